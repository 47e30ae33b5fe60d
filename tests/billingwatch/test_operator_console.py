"""Operator actions in the admin (issue 7): disabling a tenant, rotating a webhook URL."""

import pytest
from django.contrib.auth import get_user_model

from tenants.models import Tenant
from tenants.scope import tenant_scope
from tests.conftest import load_fixture_event, post_event
from webhooks.ingest import TENANT_DISABLED_MESSAGE
from webhooks.models import StripeEvent, WebhookEndpoint, WebhookRejection

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-op-123456")
    client.force_login(user)
    return user


def events_of(tenant):
    with tenant_scope(tenant):
        return list(StripeEvent.objects.values_list("stripe_id", flat=True))


def rejections_of(tenant):
    with tenant_scope(tenant):
        return {r.reason: r.count for r in WebhookRejection.objects.all()}


def test_a_disabled_tenant_gets_403_and_nothing_is_stored_until_enabled_again(client, operator, acme, globex):
    response = client.post("/admin/tenants/tenant/", {"action": "disable_tenants", "_selected_action": [acme.tenant.pk]})
    assert response.status_code == 302
    assert Tenant.objects.get(pk=acme.tenant.pk).is_active is False
    assert Tenant.objects.get(pk=globex.tenant.pk).is_active is True  # only the selected one

    event = load_fixture_event("charge.succeeded.json", id="evt_while_disabled")
    refused = post_event(client, acme.endpoint, event)
    assert refused.status_code == 403
    assert refused.json() == {"received": False, "error": TENANT_DISABLED_MESSAGE}
    assert events_of(acme.tenant) == []
    assert rejections_of(acme.tenant) == {"tenant_disabled": 1}
    # Another tenant is not affected.
    assert post_event(client, globex.endpoint, load_fixture_event("charge.succeeded.json"),
                      secret="whsec_globexsecret987654321").status_code == 200

    client.post("/admin/tenants/tenant/", {"action": "enable_tenants", "_selected_action": [acme.tenant.pk]})
    assert Tenant.objects.get(pk=acme.tenant.pk).is_active is True
    # Stripe's retry of the refused delivery now lands.
    assert post_event(client, acme.endpoint, event).json() == {"received": True, "duplicate": False}
    assert events_of(acme.tenant) == ["evt_while_disabled"]


def test_disabling_an_already_disabled_tenant_says_so_and_changes_nothing(client, operator, acme):
    Tenant.objects.filter(pk=acme.tenant.pk).update(is_active=False)
    response = client.post(
        "/admin/tenants/tenant/", {"action": "disable_tenants", "_selected_action": [acme.tenant.pk]}, follow=True
    )
    assert "Nothing to do: the selected tenants were already disabled." in response.content.decode()
    assert Tenant.objects.get(pk=acme.tenant.pk).is_active is False


def test_rotating_the_url_token_asks_first_then_the_old_url_stops_working(client, operator, acme, globex):
    old_token, old_path = acme.endpoint.token, acme.endpoint.path
    changelist = "/admin/webhooks/webhookendpoint/"
    confirm = client.post(changelist, {"action": "rotate_url_token", "_selected_action": [acme.endpoint.pk]})
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "Its current URL stops accepting deliveries at once" in page and old_path in page
    assert WebhookEndpoint.all_tenants.get(pk=acme.endpoint.pk).token == old_token  # not yet

    done = client.post(
        changelist, {"action": "rotate_url_token", "_selected_action": [acme.endpoint.pk], "confirmed": "yes"},
        follow=True,
    )
    rotated = WebhookEndpoint.all_tenants.get(pk=acme.endpoint.pk)
    assert rotated.token != old_token and len(rotated.token) == len(old_token)
    assert rotated.path in done.content.decode()
    assert WebhookEndpoint.all_tenants.get(pk=globex.endpoint.pk).token == globex.endpoint.token

    event = load_fixture_event("charge.succeeded.json")
    assert post_event(client, acme.endpoint, event, path=old_path).status_code == 404
    assert post_event(client, rotated, event).status_code == 200
    assert events_of(acme.tenant) == [event["id"]]
