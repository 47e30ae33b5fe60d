"""Authentication, the tenant scope, read-only keys, the session door and the error body."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.keys import LAST_USED_RESOLUTION
from tenants.models import ApiKey, Membership
from tenants.scope import current_tenant_or_none, tenant_scope
from tests.api.conftest import client_for, error, make_anomaly

pytestmark = pytest.mark.django_db

UNAUTHENTICATED = {"code": "not_authenticated", "message": "Authentication credentials were not provided.",
                   "fields": {}}
BAD_KEY = {"code": "authentication_failed", "message": "Invalid or revoked API key.", "fields": {}}


def test_no_key_is_401_with_www_authenticate(acme):
    response = APIClient().get("/api/v1/anomalies/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == {"error": UNAUTHENTICATED}


@pytest.mark.parametrize("header", [
    "Bearer bw_nope_nope", "Bearer not-a-key", "Bearer bw_", "Bearer bw_abc", "Bearer bw__x",
])
def test_wrong_or_malformed_key_is_401(acme, header):
    response = APIClient().get("/api/v1/status/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == {"error": BAD_KEY}


def test_header_with_extra_parts_is_401(acme):
    response = APIClient().get("/api/v1/status/", HTTP_AUTHORIZATION=f"Bearer {acme.api_key} extra")
    assert response.status_code == 401
    assert error(response)["code"] == "authentication_failed"


def test_right_prefix_wrong_secret_is_401(acme):
    prefix = acme.api_key.split("_")[1]
    response = client_for(f"bw_{prefix}_wrongsecret").get("/api/v1/status/")
    assert response.status_code == 401
    assert response.json() == {"error": BAD_KEY}


def test_revoked_key_is_401(api, acme):
    with tenant_scope(acme.tenant):
        ApiKey.objects.update(revoked_at=timezone.now())
    response = api.get("/api/v1/status/")
    assert response.status_code == 401
    assert response.json() == {"error": BAD_KEY}


def test_inactive_tenant_key_is_401(api, acme):
    acme.tenant.is_active = False
    acme.tenant.save()
    assert api.get("/api/v1/status/").status_code == 401


def test_scope_is_entered_for_the_request_and_left_after(api, acme, monkeypatch):
    from api.views import status as status_view

    seen = []
    real = status_view.queue_status

    def spy(tenant):
        seen.append(current_tenant_or_none())
        return real(tenant)

    monkeypatch.setattr(status_view, "queue_status", spy)
    assert api.get("/api/v1/status/").status_code == 200
    assert seen == [acme.tenant]
    assert current_tenant_or_none() is None


def test_scope_is_left_after_an_error(api):
    assert api.get("/api/v1/anomalies/not-a-uuid/").status_code == 404
    assert current_tenant_or_none() is None


def test_last_used_is_written_at_most_once_a_minute(api, acme, django_assert_num_queries):
    api.get("/api/v1/status/")
    with tenant_scope(acme.tenant):
        first = ApiKey.objects.get().last_used_at
    assert first is not None
    api.get("/api/v1/status/")
    with tenant_scope(acme.tenant):
        assert ApiKey.objects.get().last_used_at == first
        ApiKey.objects.update(last_used_at=first - LAST_USED_RESOLUTION - timedelta(seconds=1))
    api.get("/api/v1/status/")
    with tenant_scope(acme.tenant):
        assert ApiKey.objects.get().last_used_at > first


def test_read_only_key_reads_but_cannot_write(readonly_api, acme):
    anomaly = make_anomaly(acme.tenant)
    assert readonly_api.get("/api/v1/anomalies/").status_code == 200
    response = readonly_api.post(f"/api/v1/anomalies/{anomaly.public_id}/acknowledge/", {}, format="json")
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "read_only", "message": "This API key is read-only.", "fields": {}}}
    with tenant_scope(acme.tenant):
        anomaly.refresh_from_db()
    assert anomaly.status == "open"


def test_unknown_api_url_is_404_with_the_error_body(api):
    response = api.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}


def test_wrong_method_is_405(api):
    response = api.delete("/api/v1/status/")
    assert response.status_code == 405
    assert response.json() == {
        "error": {"code": "method_not_allowed", "message": 'Method "DELETE" not allowed.', "fields": {}}
    }


def test_broken_json_is_400(api, acme):
    anomaly = make_anomaly(acme.tenant)
    response = api.post(f"/api/v1/anomalies/{anomaly.public_id}/snooze/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert error(response)["code"] == "parse_error"


# --- the session door: /api/v1/t/<slug>/… ------------------------------------------------

def member(tenant, role):
    user = get_user_model().objects.create_user(username=f"{role}@example.com", password="pw-long-enough-1")
    with tenant_scope(tenant):
        Membership.objects.create(tenant=tenant, user=user, role=role)
    client = APIClient()
    client.force_login(user)
    return client


def test_member_reads_and_writes_through_the_session(acme):
    anomaly = make_anomaly(acme.tenant)
    client = member(acme.tenant, "admin")
    response = client.get(f"/api/v1/t/{acme.tenant.slug}/anomalies/")
    assert response.status_code == 200
    assert [a["id"] for a in response.json()["results"]] == [str(anomaly.public_id)]
    response = client.post(f"/api/v1/t/{acme.tenant.slug}/anomalies/{anomaly.public_id}/acknowledge/", {},
                           format="json")
    assert response.status_code == 200
    with tenant_scope(acme.tenant):
        change = anomaly.status_changes.get()
    assert change.actor_label == "admin@example.com"
    assert change.actor.username == "admin@example.com"


def test_viewer_cannot_write(acme):
    anomaly = make_anomaly(acme.tenant)
    client = member(acme.tenant, "viewer")
    response = client.post(f"/api/v1/t/{acme.tenant.slug}/anomalies/{anomaly.public_id}/acknowledge/", {},
                           format="json")
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "read_only", "message": "Viewers can only read.", "fields": {}}}


def test_non_member_gets_404_as_for_no_such_tenant(acme, globex):
    client = member(globex.tenant, "owner")
    for slug in (acme.tenant.slug, "no-such-tenant"):
        response = client.get(f"/api/v1/t/{slug}/anomalies/")
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}


def test_session_door_without_login_is_refused(acme):
    response = APIClient().get(f"/api/v1/t/{acme.tenant.slug}/anomalies/")
    assert response.status_code == 403
    assert error(response)["code"] == "not_authenticated"


def test_session_door_ignores_api_keys(api, acme):
    assert api.get(f"/api/v1/t/{acme.tenant.slug}/status/").status_code == 403


def test_session_writes_need_csrf(acme):
    anomaly = make_anomaly(acme.tenant)
    user = get_user_model().objects.create_user(username="csrf@example.com", password="pw-long-enough-1")
    with tenant_scope(acme.tenant):
        Membership.objects.create(tenant=acme.tenant, user=user, role="owner")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(f"/api/v1/t/{acme.tenant.slug}/anomalies/{anomaly.public_id}/acknowledge/", {},
                           format="json")
    assert response.status_code == 403
    assert "CSRF" in error(response)["message"]
