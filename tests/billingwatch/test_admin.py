"""The operators' admin: every model is there, staff only, secrets never shown."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from tenants.scope import tenant_scope
from tests.conftest import SECRET, load_fixture_event, post_event
from webhooks.models import SigningSecret, StripeEvent, WebhookEndpoint

pytestmark = pytest.mark.django_db

OUR_APPS = {"tenants", "webhooks", "anomalies", "alerts"}


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-op-123456")
    client.force_login(user)
    return user


def test_every_model_of_ours_is_registered():
    ours = [m for m in apps.get_models() if m._meta.app_label in OUR_APPS]
    assert ours
    assert [m.__name__ for m in ours if not admin.site.is_registered(m)] == []


def test_non_staff_users_get_no_admin(client, acme):
    user = get_user_model().objects.create_user("viewer", "v@example.com", "pw-viewer-123")
    client.force_login(user)
    response = client.get("/admin/webhooks/stripeevent/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_changelists_and_change_pages_render_for_all_tenants(client, operator, acme, globex):
    post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json", id="evt_admin_a"))
    post_event(client, globex.endpoint, load_fixture_event("charge.failed.json", id="evt_admin_g"),
               secret="whsec_globexsecret987654321")
    for model in [m for m in apps.get_models() if m._meta.app_label in OUR_APPS]:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url
    events = client.get("/admin/webhooks/stripeevent/")
    assert b"evt_admin_a" in events.content and b"evt_admin_g" in events.content
    event = StripeEvent.all_tenants.get(stripe_id="evt_admin_a")
    page = client.get(reverse("admin:webhooks_stripeevent_change", args=[event.pk]))
    assert page.status_code == 200
    assert b"&quot;object&quot;: &quot;event&quot;" in page.content  # indented JSON payload
    tenant_page = client.get(reverse("admin:tenants_tenant_change", args=[acme.tenant.pk]))
    assert tenant_page.status_code == 200


def test_signing_secrets_are_write_only(client, operator, acme):
    page = client.get(reverse("admin:webhooks_webhookendpoint_change", args=[acme.endpoint.pk]))
    assert page.status_code == 200
    assert SECRET.encode() not in page.content
    assert SigningSecret.all_tenants.get().fingerprint.encode() in page.content


def test_operator_adds_a_rotation_secret_in_the_endpoint_page(client, operator, acme):
    existing = SigningSecret.all_tenants.get()
    url = reverse("admin:webhooks_webhookendpoint_change", args=[acme.endpoint.pk])
    data = {
        "tenant": acme.tenant.pk,
        "label": "Stripe",
        "enabled": "on",
        "signing_secrets-TOTAL_FORMS": "2",
        "signing_secrets-INITIAL_FORMS": "1",
        "signing_secrets-MIN_NUM_FORMS": "0",
        "signing_secrets-MAX_NUM_FORMS": "1000",
        "signing_secrets-0-id": existing.pk,
        "signing_secrets-0-endpoint": acme.endpoint.pk,
        "signing_secrets-0-secret": "",  # left empty: keep the current secret
        "signing_secrets-0-expires_at_0": "2030-01-01",
        "signing_secrets-0-expires_at_1": "00:00:00",
        "signing_secrets-1-endpoint": acme.endpoint.pk,
        "signing_secrets-1-secret": "whsec_rotated0123456789",
        "signing_secrets-1-expires_at_0": "",
        "signing_secrets-1-expires_at_1": "",
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    with tenant_scope(acme.tenant):
        secrets = {s.secret: s.expires_at for s in SigningSecret.objects.all()}
    assert set(secrets) == {SECRET, "whsec_rotated0123456789"}
    assert secrets[SECRET].year == 2030
    assert post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"),
                      secret="whsec_rotated0123456789").status_code == 200


def test_admin_refuses_an_invalid_secret(client, operator, acme):
    url = reverse("admin:webhooks_webhookendpoint_change", args=[acme.endpoint.pk])
    existing = SigningSecret.all_tenants.get()
    data = {
        "tenant": acme.tenant.pk, "label": "Stripe", "enabled": "on",
        "signing_secrets-TOTAL_FORMS": "2", "signing_secrets-INITIAL_FORMS": "1",
        "signing_secrets-MIN_NUM_FORMS": "0", "signing_secrets-MAX_NUM_FORMS": "1000",
        "signing_secrets-0-id": existing.pk, "signing_secrets-0-endpoint": acme.endpoint.pk,
        "signing_secrets-0-secret": "",
        "signing_secrets-1-endpoint": acme.endpoint.pk, "signing_secrets-1-secret": "sk_live_oops",
    }
    response = client.post(url, data)
    assert response.status_code == 200
    assert b"A Stripe signing secret looks like whsec_" in response.content
    assert SigningSecret.all_tenants.count() == 1


def test_admin_can_disable_an_endpoint(client, operator, acme):
    url = reverse("admin:webhooks_webhookendpoint_change", args=[acme.endpoint.pk])
    data = {
        "tenant": acme.tenant.pk, "label": "Stripe",
        "signing_secrets-TOTAL_FORMS": "0", "signing_secrets-INITIAL_FORMS": "0",
        "signing_secrets-MIN_NUM_FORMS": "0", "signing_secrets-MAX_NUM_FORMS": "1000",
    }
    assert client.post(url, data).status_code == 302
    assert WebhookEndpoint.all_tenants.get(pk=acme.endpoint.pk).enabled is False
    assert post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json")).status_code == 404


def test_bulk_acknowledge_records_the_operator(client, operator, acme):
    from anomalies.models import Anomaly, AnomalyStatusChange
    from tests.anomalies.events import T0, event, minutes, process, store

    store(acme.tenant, event("charge.succeeded", T0, customer="cus_A", amount=4900, currency="usd"),
          event("charge.succeeded", T0 + minutes(1), customer="cus_A", amount=4900, currency="usd"))
    process()
    anomaly = Anomaly.all_tenants.get(detector="duplicate_charge")
    response = client.post("/admin/anomalies/anomaly/", {"action": "bulk_acknowledge", "_selected_action": [anomaly.pk]})
    assert response.status_code == 302
    anomaly.refresh_from_db()
    assert anomaly.status == "acknowledged" and anomaly.acknowledged_by == "op"
    change = AnomalyStatusChange.all_tenants.get(anomaly=anomaly)
    assert change.actor == operator and change.to_status == "acknowledged"
    page = client.get(reverse("admin:anomalies_anomaly_change", args=[anomaly.pk]))
    assert page.status_code == 200 and b"&quot;charge_ids&quot;" in page.content


def test_detector_config_form_rejects_out_of_range_thresholds(client, operator, acme):
    from anomalies.models import DetectorConfig

    response = client.post("/admin/anomalies/detectorconfig/add/", {
        "tenant": acme.tenant.pk, "detector": "duplicate_charge", "enabled": "on",
        "thresholds": '{"window_seconds": 5}',
    })
    assert response.status_code == 200
    assert b"window_seconds: must be between 10 and 86400" in response.content
    assert DetectorConfig.all_tenants.count() == 0
    response = client.post("/admin/anomalies/detectorconfig/add/", {
        "tenant": acme.tenant.pk, "detector": "duplicate_charge", "enabled": "on",
        "thresholds": '{"window_seconds": 600}',
    })
    assert response.status_code == 302
    assert DetectorConfig.all_tenants.get().thresholds == {"window_seconds": 600}
