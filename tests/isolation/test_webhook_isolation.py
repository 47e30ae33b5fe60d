"""Outsiders: one tenant's credentials never reach another tenant's data."""

import pytest

from tenants.scope import tenant_scope
from tests.conftest import load_fixture_event, post_event
from webhooks.models import StripeEvent, WebhookRejection

pytestmark = pytest.mark.django_db


def snapshot(tenant):
    with tenant_scope(tenant):
        return (
            list(StripeEvent.objects.values_list("stripe_id", "status").order_by("id")),
            list(WebhookRejection.objects.values_list("reason", "count").order_by("id")),
        )


def test_events_signed_with_another_tenants_secret_are_refused(client, acme, globex):
    before = snapshot(globex.tenant)
    # Acme signs with its own secret but posts to Globex's URL.
    response = post_event(client, globex.endpoint, load_fixture_event("charge.succeeded.json"))
    assert response.status_code == 400
    assert response.json()["error"] == "signature does not match any active signing secret"
    events, _ = snapshot(globex.tenant)
    assert events == before[0]
    assert snapshot(acme.tenant) == ([], [])


def test_a_tenants_events_are_stored_under_that_tenant_only(client, acme, globex):
    post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json", id="evt_acme_only"))
    assert snapshot(globex.tenant) == ([], [])
    with tenant_scope(globex.tenant):
        assert not StripeEvent.objects.filter(stripe_id="evt_acme_only").exists()
    assert StripeEvent.all_tenants.get(stripe_id="evt_acme_only").tenant_id == acme.tenant.pk


def test_guessing_a_token_prefix_finds_nothing(client, acme):
    token = acme.endpoint.token
    for guess in (token[:-1], token.upper(), token + "x", "%", ".*"):
        response = post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"),
                              path=f"/webhooks/stripe/{guess}/")
        assert response.status_code == 404, guess
    assert snapshot(acme.tenant) == ([], [])
