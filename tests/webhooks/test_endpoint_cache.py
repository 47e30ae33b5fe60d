"""The per-process endpoint cache: changes here apply at once, changes elsewhere within the TTL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.scope import tenant_scope
from tests.conftest import load_fixture_event, post_event
from webhooks import endpoint_cache
from webhooks.models import SigningSecret, WebhookEndpoint

pytestmark = pytest.mark.django_db


def test_lookups_are_cached(acme, django_assert_num_queries):
    with django_assert_num_queries(2):
        first = endpoint_cache.lookup(acme.endpoint.token)
    with django_assert_num_queries(0):
        assert endpoint_cache.lookup(acme.endpoint.token) is first
    assert endpoint_cache.lookup("no-such-token") is None


def test_a_change_in_this_process_applies_at_once(client, acme):
    assert post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json")).status_code == 200
    with tenant_scope(acme.tenant):
        endpoint = WebhookEndpoint.objects.get()
        endpoint.enabled = False
        endpoint.save()
    assert post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json")).status_code == 404


def test_a_change_made_by_another_process_applies_after_the_ttl(client, acme, settings, monkeypatch):
    settings.BILLINGWATCH_ENDPOINT_CACHE_SECONDS = 5
    new_secret = "whsec_fromanotherprocess123"
    assert post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json")).status_code == 200
    # Another web process adds a secret: no signal reaches this one.
    SigningSecret.all_tenants.bulk_create(
        [SigningSecret(tenant=acme.tenant, endpoint=acme.endpoint, secret=new_secret)]
    )
    event = load_fixture_event("charge.succeeded.json")
    assert post_event(client, acme.endpoint, event, secret=new_secret).status_code == 400  # not yet
    clock = endpoint_cache.time.monotonic() + 6
    monkeypatch.setattr(endpoint_cache.time, "monotonic", lambda: clock)
    assert post_event(client, acme.endpoint, event, secret=new_secret).status_code == 200


def test_cached_secrets_still_expire_on_time(client, acme, monkeypatch):
    now = timezone.now()
    with tenant_scope(acme.tenant):
        secret = SigningSecret.objects.get()
        secret.expires_at = now + timedelta(hours=1)
        secret.save()
    assert post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json")).status_code == 200
    # Two hours later, with the endpoint still in the cache: the expiry is checked per request.
    later = now + timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    monkeypatch.setattr(endpoint_cache.time, "monotonic", lambda: 0.0)  # the cache entry stays fresh
    response = post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"),
                          timestamp=int(later.timestamp()))
    assert response.status_code == 400
    assert response.json()["error"] == "no active signing secret is configured for this endpoint"


def test_ttl_zero_turns_the_cache_off(acme, settings, django_assert_num_queries):
    settings.BILLINGWATCH_ENDPOINT_CACHE_SECONDS = 0
    endpoint_cache.lookup(acme.endpoint.token)
    with django_assert_num_queries(2):
        endpoint_cache.lookup(acme.endpoint.token)
