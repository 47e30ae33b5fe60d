"""The endpoint, its tenant and its signing secrets, as ingest needs them, cached per process.

Building these two ORM queries cost more CPU per webhook than verifying the
signature and storing the event together (docs/performance.md). The answer
changes rarely (an endpoint disabled, a secret added or expired, a tenant's
rate limit changed), so each web process keeps it for a few seconds:

- in the process that makes a change, saving or deleting an endpoint, a
  secret or a tenant clears the cache at once (signals below);
- in other processes the change takes effect within
  BILLINGWATCH_ENDPOINT_CACHE_SECONDS (default 5; 0 turns the cache off).

Secret expiry is checked on every request against the cached expiry times,
so an expired secret stops working on time. Unknown tokens are not cached, so
a flood of random tokens cannot fill memory; the cache is also bounded.
"""

import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from webhooks.models import SigningSecret, WebhookEndpoint

MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class CachedEndpoint:
    endpoint: WebhookEndpoint  # with .tenant loaded
    secrets: tuple[tuple[str, datetime | None], ...]  # (secret, expires_at)

    def active_secrets(self, now: datetime) -> list[str]:
        return [secret for secret, expires_at in self.secrets if expires_at is None or expires_at > now]


_entries: dict[str, tuple[float, CachedEndpoint]] = {}


def lookup(token: str) -> CachedEndpoint | None:
    ttl = settings.BILLINGWATCH_ENDPOINT_CACHE_SECONDS
    now = time.monotonic()
    hit = _entries.get(token)
    if hit is not None and hit[0] > now:
        return hit[1]
    # Unscoped on purpose: the token is what tells us the tenant.
    endpoint = WebhookEndpoint.all_tenants.select_related("tenant").filter(token=token).first()
    if endpoint is None:
        _entries.pop(token, None)
        return None
    secrets = tuple(SigningSecret.all_tenants.filter(endpoint=endpoint).values_list("secret", "expires_at"))
    cached = CachedEndpoint(endpoint, secrets)
    if ttl > 0:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[token] = (now + ttl, cached)
    return cached


def clear(*args, **kwargs) -> None:
    """Signal receiver: any change to an endpoint, a secret or a tenant empties this process's cache."""
    _entries.clear()
