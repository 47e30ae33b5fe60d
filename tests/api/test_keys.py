import pytest

from tenants.models import ApiKey
from tenants.scope import tenant_scope
from tests.api.conftest import client_for, error

pytestmark = pytest.mark.django_db


def test_list_shows_prefix_name_last_used_never_the_secret(api, acme):
    api.get("/api/v1/status/")
    (key,) = api.get("/api/v1/keys/").json()
    assert set(key) == {"id", "name", "read_only", "created_at", "last_used_at", "revoked_at"}
    assert acme.api_key.startswith(f"bw_{key['id']}_")
    assert key["name"] == "Default key" and key["last_used_at"] is not None


def test_create_shows_the_key_once_and_it_works(api, acme):
    response = api.post("/api/v1/keys/", {"name": "ci", "read_only": True}, format="json")
    assert response.status_code == 201
    created = response.json()
    assert created["key"].startswith(f"bw_{created['id']}_") and created["read_only"] is True
    assert all("key" not in k for k in api.get("/api/v1/keys/").json())
    new_client = client_for(created["key"])
    assert new_client.get("/api/v1/status/").status_code == 200
    assert new_client.post("/api/v1/keys/", {"name": "x"}, format="json").status_code == 403


def test_create_needs_a_name(api):
    response = api.post("/api/v1/keys/", {"name": "  "}, format="json")
    assert response.status_code == 400
    assert error(response)["fields"] == {"name": "This field may not be blank."}
    response = api.post("/api/v1/keys/", {}, format="json")
    assert error(response)["fields"] == {"name": "This field is required."}


def test_revoke_stops_the_key(api, acme):
    created = api.post("/api/v1/keys/", {"name": "temp"}, format="json").json()
    response = api.post(f"/api/v1/keys/{created['id']}/revoke/")
    assert response.status_code == 200 and response.json()["revoked_at"]
    assert client_for(created["key"]).get("/api/v1/status/").status_code == 401
    assert api.post(f"/api/v1/keys/{created['id']}/revoke/").json()["revoked_at"] == response.json()["revoked_at"]


def test_read_only_key_cannot_create_or_revoke(readonly_api, acme):
    prefix = acme.api_key.split("_")[1]
    assert readonly_api.post("/api/v1/keys/", {"name": "x"}, format="json").status_code == 403
    assert readonly_api.post(f"/api/v1/keys/{prefix}/revoke/").status_code == 403
    with tenant_scope(acme.tenant):
        assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()


def test_another_tenants_key_is_404(outsider, acme):
    prefix = acme.api_key.split("_")[1]
    assert outsider.post(f"/api/v1/keys/{prefix}/revoke/").status_code == 404
    assert client_for(acme.api_key).get("/api/v1/status/").status_code == 200


@pytest.mark.parametrize("rows", [1, 20])
def test_list_query_count(api, acme, django_assert_num_queries, rows):
    with tenant_scope(acme.tenant):
        for n in range(rows - 1):
            ApiKey.issue(acme.tenant, f"k{n}")
    api.get("/api/v1/status/")
    with django_assert_num_queries(2):
        assert len(api.get("/api/v1/keys/").json()) == rows
