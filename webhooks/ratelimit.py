"""Per-tenant webhook rate limit: a token bucket shared by every process.

Each tenant gets `rate` tokens per second up to `burst`; a request takes one.
The bucket must hold across gunicorn workers and machines, so it lives either
in Redis (when CACHE_URL names Redis: one Lua script, atomic on the server,
using the server's clock) or in the database (embedded mode: one conditional
UPDATE ... RETURNING, atomic because the row is locked by the update).

No maintained library does this: django-ratelimit is a fixed-window counter
whose system check refuses the database cache (see
shared/reference/tenancy-queues-rls.md §5), and we want a real bucket with a
burst, identical semantics on both backends.
"""

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after: int = 0  # whole seconds until one token is back


def _retry_after(tokens: float, rate: float) -> int:
    return max(1, math.ceil((1 - tokens) / rate))


def consume_webhook_token(tenant) -> RateDecision:
    """Take one token from the tenant's bucket; say whether the request may go on."""
    rate, burst = tenant.effective_rate_limit
    if _use_cache():
        return _consume_from_redis(tenant.pk, rate, burst)
    return _consume_from_database(tenant.pk, rate, burst)


def _use_cache() -> bool:
    choice = settings.BILLINGWATCH_RATE_LIMIT_BACKEND
    is_redis = isinstance(caches["default"], RedisCache)
    if choice == "cache" and not is_redis:
        raise ImproperlyConfigured("BILLINGWATCH_RATE_LIMIT_BACKEND=cache needs CACHE_URL to name Redis")
    return choice == "cache" or (choice == "auto" and is_redis)


# --- database backend ---------------------------------------------------------

def _consume_from_database(tenant_id: int, rate: float, burst: int) -> RateDecision:
    now = time.time()
    if connection.vendor == "postgresql":
        least, greatest = "LEAST", "GREATEST"
    else:
        least, greatest = "MIN", "MAX"
    refilled = f"{least}(%(burst)s, tokens + {greatest}(0, %(now)s - updated_at) * %(rate)s)"
    params = {"burst": float(burst), "rate": float(rate), "now": now, "tenant": tenant_id}
    update = (
        "UPDATE webhooks_ratelimitbucket SET "
        f"last_allowed = ({refilled} >= 1), "
        f"tokens = CASE WHEN {refilled} >= 1 THEN {refilled} - 1 ELSE {refilled} END, "
        "updated_at = %(now)s "
        "WHERE tenant_id = %(tenant)s RETURNING last_allowed, tokens"
    )
    with connection.cursor() as cursor:
        cursor.execute(update, params)
        row = cursor.fetchone()
        if row is None:
            # First request of this tenant: a full bucket minus this request.
            cursor.execute(
                "INSERT INTO webhooks_ratelimitbucket (tenant_id, tokens, updated_at, last_allowed) "
                "VALUES (%(tenant)s, %(burst)s - 1, %(now)s, %(yes)s) ON CONFLICT (tenant_id) DO NOTHING",
                {**params, "yes": True},
            )
            if cursor.rowcount == 1:
                return RateDecision(True)
            cursor.execute(update, params)  # another process created it first
            row = cursor.fetchone()
    allowed, tokens = bool(row[0]), row[1]
    return RateDecision(True) if allowed else RateDecision(False, _retry_after(tokens, rate))


# --- Redis backend ------------------------------------------------------------

_TOKEN_BUCKET_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return {allowed, tostring(tokens)}
"""


def _consume_from_redis(tenant_id: int, rate: float, burst: int) -> RateDecision:
    cache = caches["default"]
    # Django's RedisCache exposes no scripting; its client is the redis-py
    # connection pool it already manages.
    client = cache._cache.get_client(write=True)
    key = cache.make_key(f"webhook-rate:{tenant_id}")
    allowed, tokens = client.eval(_TOKEN_BUCKET_LUA, 1, key, rate, burst)
    if int(allowed):
        return RateDecision(True)
    return RateDecision(False, _retry_after(float(tokens), rate))
