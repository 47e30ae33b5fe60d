from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.scope import tenant_scope
from tests.api.conftest import error
from tests.conftest import SECRET
from webhooks.models import SigningSecret, WebhookEndpoint, WebhookRejection

pytestmark = pytest.mark.django_db

NEW_SECRET = "whsec_rotated0123456789abcdef"


def test_list_shows_url_secrets_without_values_and_counters(api, acme):
    with tenant_scope(acme.tenant):
        WebhookRejection.objects.create(tenant=acme.tenant, endpoint=acme.endpoint, reason="signature_mismatch",
                                        count=3, hour=timezone.now().replace(minute=0, second=0, microsecond=0))
    (endpoint,) = api.get("/api/v1/endpoints/").json()
    assert endpoint["id"] == acme.endpoint.token
    assert endpoint["url"] == f"http://testserver{acme.endpoint.path}"
    assert endpoint["rejections_last_7_days"] == {"signature_mismatch": 3}
    (secret,) = endpoint["secrets"]
    assert set(secret) == {"id", "created_at", "expires_at", "active"}
    assert SECRET not in str(endpoint)


def test_add_and_expire_a_secret(api, acme):
    response = api.post(f"/api/v1/endpoints/{acme.endpoint.token}/secrets/", {"secret": NEW_SECRET}, format="json")
    assert response.status_code == 201
    added = response.json()
    assert NEW_SECRET not in str(added) and added["active"] is True
    response = api.post(f"/api/v1/endpoints/{acme.endpoint.token}/secrets/{added['id']}/expire/", {}, format="json")
    assert response.status_code == 200
    assert response.json()["active"] is False
    with tenant_scope(acme.tenant):
        assert SigningSecret.objects.get(secret=NEW_SECRET).expires_at <= timezone.now()


def test_bad_secret_is_400(api, acme):
    response = api.post(f"/api/v1/endpoints/{acme.endpoint.token}/secrets/", {"secret": "sk_live_nope"},
                        format="json")
    assert response.status_code == 400
    assert response.json() == {"error": {
        "code": "invalid",
        "message": "a Stripe signing secret looks like whsec_ followed by letters and digits",
        "fields": {"secret": "a Stripe signing secret looks like whsec_ followed by letters and digits"},
    }}
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = api.post(f"/api/v1/endpoints/{acme.endpoint.token}/secrets/",
                        {"secret": NEW_SECRET, "expires_at": past}, format="json")
    assert error(response)["fields"] == {"expires_at": "expires_at must be in the future"}


def test_unknown_secret_is_404(api, acme):
    response = api.post(f"/api/v1/endpoints/{acme.endpoint.token}/secrets/0123456789/expire/", {}, format="json")
    assert response.status_code == 404


def test_read_only_key_cannot_touch_secrets(readonly_api, acme):
    response = readonly_api.post(f"/api/v1/endpoints/{acme.endpoint.token}/secrets/", {"secret": NEW_SECRET},
                                 format="json")
    assert response.status_code == 403
    with tenant_scope(acme.tenant):
        assert SigningSecret.objects.count() == 1


def test_another_tenants_endpoint_is_404_and_unchanged(outsider, acme):
    with tenant_scope(acme.tenant):
        fingerprint = SigningSecret.objects.get().fingerprint
    token = acme.endpoint.token
    assert outsider.get(f"/api/v1/endpoints/{token}/").status_code == 404
    assert outsider.post(f"/api/v1/endpoints/{token}/secrets/", {"secret": NEW_SECRET}, format="json").status_code == 404
    assert outsider.post(f"/api/v1/endpoints/{token}/secrets/{fingerprint}/expire/", {}, format="json").status_code == 404
    with tenant_scope(acme.tenant):
        assert [s.expires_at for s in SigningSecret.objects.all()] == [None]


@pytest.mark.parametrize("rows", [1, 20])
def test_list_query_count(api, acme, django_assert_num_queries, rows):
    with tenant_scope(acme.tenant):
        for _ in range(rows - 1):
            endpoint = WebhookEndpoint.objects.create(tenant=acme.tenant)
            SigningSecret.objects.create(tenant=acme.tenant, endpoint=endpoint, secret=NEW_SECRET)
    api.get("/api/v1/status/")
    with django_assert_num_queries(4):  # key, endpoints, their secrets, rejection counts
        assert len(api.get("/api/v1/endpoints/").json()) == rows
