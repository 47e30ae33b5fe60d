"""Per-tenant webhook rate limit: exact across processes, on the database and on Redis."""

import multiprocessing

import pytest
from django.core.cache import caches
from django.db import connections
from django.test import override_settings

from tenants.scope import tenant_scope
from tests.conftest import load_fixture_event, post_event
from webhooks.models import StripeEvent, WebhookRejection
from webhooks.ratelimit import consume_webhook_token

REDIS_CACHE = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": "redis://127.0.0.1:6379/15",
    "KEY_PREFIX": "bw-test",
}


def redis_available() -> bool:
    try:
        import redis

        return redis.Redis.from_url(REDIS_CACHE["LOCATION"], socket_connect_timeout=0.5).ping()
    except Exception:
        return False


@pytest.fixture(params=["database", "redis"])
def limiter_backend(request, settings):
    if request.param == "redis":
        if not redis_available():
            pytest.skip("no Redis on 127.0.0.1:6379")
        settings.CACHES = {"default": REDIS_CACHE}
        caches["default"]._cache.get_client(write=True).flushdb()
        settings.BILLINGWATCH_RATE_LIMIT_BACKEND = "cache"
    else:
        settings.BILLINGWATCH_RATE_LIMIT_BACKEND = "database"
    return request.param


def _set_limit(tenant, rate, burst):
    tenant.rate_limit_per_second = rate
    tenant.rate_limit_burst = burst
    tenant.save()


@pytest.mark.django_db
def test_burst_then_refuse_with_retry_after(acme, limiter_backend):
    _set_limit(acme.tenant, 0.5, 3)
    with tenant_scope(acme.tenant):
        decisions = [consume_webhook_token(acme.tenant) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after == 2  # one token back after 1 / 0.5 s


@pytest.mark.django_db
def test_tenants_have_separate_buckets(acme, globex, limiter_backend):
    _set_limit(acme.tenant, 0.001, 1)
    with tenant_scope(acme.tenant):
        assert consume_webhook_token(acme.tenant).allowed
        assert not consume_webhook_token(acme.tenant).allowed
    with tenant_scope(globex.tenant):
        assert consume_webhook_token(globex.tenant).allowed


@pytest.mark.django_db
def test_over_the_limit_is_429_counted_and_nothing_stored(client, acme, limiter_backend):
    _set_limit(acme.tenant, 0.001, 2)
    assert post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json")).status_code == 200
    assert post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json")).status_code == 200
    refused = post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"))
    assert refused.status_code == 429
    assert refused.json() == {"received": False, "error": "rate limit exceeded, retry later"}
    assert int(refused["Retry-After"]) >= 1
    with tenant_scope(acme.tenant):
        assert StripeEvent.objects.count() == 2
        assert WebhookRejection.objects.get().reason == "rate_limited"


def _hammer(tenant_id, attempts, barrier, queue):
    connections.close_all()
    from tenants.models import Tenant

    tenant = Tenant.objects.get(pk=tenant_id)
    barrier.wait()
    allowed = 0
    with tenant_scope(tenant):
        for _ in range(attempts):
            allowed += consume_webhook_token(tenant).allowed
    queue.put(allowed)


@pytest.mark.django_db(transaction=True)
def test_limit_holds_across_processes(make_tenant, limiter_backend):
    tenant = make_tenant().tenant
    _set_limit(tenant, 0.001, 150)  # effectively no refill during the test
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    processes = [ctx.Process(target=_hammer, args=(tenant.pk, 100, barrier, queue)) for _ in range(4)]
    for p in processes:
        p.start()
    allowed = [queue.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(timeout=10)
    assert sum(allowed) == 150  # exactly the burst, not 4 × 150
    assert sum(1 for a in allowed if a) >= 2


@override_settings(BILLINGWATCH_RATE_LIMIT_BACKEND="cache")
@pytest.mark.django_db
def test_cache_backend_without_redis_is_a_configuration_error(acme):
    from django.core.exceptions import ImproperlyConfigured

    with tenant_scope(acme.tenant), pytest.raises(ImproperlyConfigured, match="needs CACHE_URL to name Redis"):
        consume_webhook_token(acme.tenant)
