"""The dashboard: / and /t/<tenant-slug>/… (every view behind dashboard.access.tenant_page), sign-up."""

from django.urls import include, path

from dashboard.views import alerts, anomalies, detectors, events, export, home, members, overview, webhooks

app_name = "dashboard"

tenant_urls = [
    path("", overview.overview, name="overview"),
    path("anomalies/", anomalies.anomaly_list, name="anomalies"),
    path("anomalies/bulk/", anomalies.bulk_action, name="anomalies-bulk"),
    path("anomalies/export.csv", export.anomalies_csv, name="anomalies-csv"),
    path("anomalies/<uuid:public_id>/", anomalies.anomaly_detail, name="anomaly"),
    path("anomalies/<uuid:public_id>/<slug:action>/", anomalies.anomaly_action, name="anomaly-action"),
    path("events/", events.event_list, name="events"),
    path("events/export.csv", export.events_csv, name="events-csv"),
    path("events/<str:stripe_id>/", events.event_detail, name="event"),
    path("events/<str:stripe_id>/reprocess/", events.reprocess, name="event-reprocess"),
    path("webhooks/", webhooks.webhook_setup, name="webhooks"),
    path("webhooks/<str:token>/secrets/", webhooks.add_secret, name="webhook-secret-add"),
    path("webhooks/<str:token>/secrets/<str:fingerprint>/expire/", webhooks.expire_secret,
         name="webhook-secret-expire"),
    path("webhooks/<str:token>/test/", webhooks.send_test, name="webhook-test"),
    path("detectors/", detectors.detector_list, name="detectors"),
    path("detectors/<slug:name>/", detectors.detector_update, name="detector-update"),
    path("detectors/<slug:name>/preview/", detectors.detector_preview, name="detector-preview"),
    path("members/", members.members, name="members"),
    path("members/invite/", members.invite, name="member-invite"),
    path("members/role/", members.member_role, name="member-role"),
    path("members/remove/", members.member_remove, name="member-remove"),
    path("keys/", members.key_create, name="key-create"),
    path("keys/<str:prefix>/revoke/", members.key_revoke, name="key-revoke"),
    path("alerts/", alerts.channel_list, name="alerts"),
    path("alerts/new/", alerts.channel_new, name="alert-new"),
    path("alerts/<uuid:public_id>/", alerts.channel_edit, name="alert-edit"),
    path("alerts/<uuid:public_id>/test/", alerts.channel_test, name="alert-test"),
    path("alerts/<uuid:public_id>/delete/", alerts.channel_delete, name="alert-delete"),
    path("alerts/<uuid:public_id>/deliveries/", alerts.channel_log, name="alert-log"),
]

urlpatterns = [
    path("", home.home, name="home"),
    path("signup/", home.signup, name="signup"),
    path("t/", home.home),
    path("t/<slug:tenant_slug>/", include(tenant_urls)),
]
