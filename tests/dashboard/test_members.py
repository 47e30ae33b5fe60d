"""Members (invite, role, remove, at least one owner) and API keys (shown once, revoke)."""

import pytest
from django.core import mail

from tenants.models import ApiKey, Membership
from tenants.scope import tenant_scope
from tests.dashboard.conftest import url

pytestmark = pytest.mark.django_db


def roles(tenant):
    with tenant_scope(tenant):
        return dict(Membership.objects.values_list("user__username", "role"))


def test_invite_a_new_person_sends_a_set_password_link(acme, owner):
    response = owner.post(url(acme.tenant, "members/invite/"), {"email": "New@Example.com", "role": "viewer"})
    assert response.status_code == 302
    assert roles(acme.tenant)["new@example.com"] == "viewer"
    [message] = mail.outbox
    assert message.to == ["new@example.com"] and "Acme" in message.subject
    assert "/accounts/reset/" in message.body


def test_invite_errors_are_shown_and_nothing_stored(acme, owner):
    before = roles(acme.tenant)
    response = owner.post(url(acme.tenant, "members/invite/"), {"email": owner.user.username, "role": "viewer"})
    assert response.status_code == 400
    assert f"{owner.user.username} is already a member" in response.content.decode()
    response = owner.post(url(acme.tenant, "members/invite/"), {"email": "not-an-email", "role": "viewer"})
    assert "Enter a valid email address." in response.content.decode()
    assert roles(acme.tenant) == before and not mail.outbox


def test_admin_cannot_grant_owner(acme, admin):
    response = admin.post(url(acme.tenant, "members/invite/"), {"email": "x@example.com", "role": "owner"})
    assert "only an owner can grant, change or remove the owner role" in response.content.decode()
    assert "x@example.com" not in roles(acme.tenant)


def test_change_role_and_remove(acme, owner, viewer):
    name = viewer.user.username
    owner.post(url(acme.tenant, "members/role/"), {"member": name, "role": "admin"})
    assert roles(acme.tenant)[name] == "admin"
    owner.post(url(acme.tenant, "members/remove/"), {"member": name})
    assert name not in roles(acme.tenant)


def test_the_last_owner_stays(acme, owner):
    name = owner.user.username
    response = owner.post(url(acme.tenant, "members/role/"), {"member": name, "role": "viewer"})
    assert response.status_code == 400
    assert "a tenant needs at least one owner" in response.content.decode()
    owner.post(url(acme.tenant, "members/remove/"), {"member": name})
    assert roles(acme.tenant)[name] == "owner"


def test_viewer_cannot_manage_members(acme, owner, viewer):
    before = roles(acme.tenant)
    assert viewer.post(url(acme.tenant, "members/role/"),
                       {"member": viewer.user.username, "role": "owner"}).status_code == 403
    assert viewer.post(url(acme.tenant, "members/invite/"), {"email": "a@example.com", "role": "owner"}).status_code \
        == 403
    assert roles(acme.tenant) == before


def test_create_key_shows_it_once_and_revoke(acme, owner):
    response = owner.post(url(acme.tenant, "keys/"), {"name": "CI export", "read_only": "on"})
    page = response.content.decode()
    assert response.status_code == 200 and "shown only once" in page
    with tenant_scope(acme.tenant):
        key = ApiKey.objects.get(name="CI export")
    assert key.read_only and f"bw_{key.prefix}_" in page
    assert f"bw_{key.prefix}_" not in owner.get(url(acme.tenant, "members/")).content.decode().replace(
        f"bw_{key.prefix}_…", "")
    owner.post(url(acme.tenant, f"keys/{key.prefix}/revoke/"))
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert owner.post(url(acme.tenant, "keys/nope/revoke/")).status_code == 404


def test_key_without_name_is_refused(acme, owner):
    response = owner.post(url(acme.tenant, "keys/"), {"name": ""})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    with tenant_scope(acme.tenant):
        assert ApiKey.objects.count() == 1  # the default key from create_tenant


@pytest.mark.parametrize("rows", [1, 20])
def test_members_page_query_count_does_not_grow(acme, owner, rows, django_assert_num_queries):
    from tests.dashboard.conftest import member_client

    for _ in range(rows):
        member_client(acme.tenant, "viewer")
    with django_assert_num_queries(7):  # session, user, membership, members, keys, switcher, quota
        assert owner.get(url(acme.tenant, "members/")).status_code == 200
