"""API keys: issue, look up, revoke, note their use. One place for the API, the dashboard and the admin.

A key reads `bw_<prefix>_<secret>`. The prefix is looked up unscoped (the key
is what selects the tenant), then the secret is compared in constant time.
`last_used_at` is written at most once a minute per key, so an API client
does not turn every read into a write.
"""

from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from tenants.models import API_KEY_PREFIX, ApiKey, Tenant

LAST_USED_RESOLUTION = timedelta(minutes=1)


def issue_key(tenant: Tenant, name: str, *, read_only: bool = False) -> tuple[ApiKey, str]:
    """A new key and its full text, which is shown once and never stored (in the tenant's scope)."""
    return ApiKey.issue(tenant, name=name.strip(), read_only=read_only)


def split_key(raw: str) -> tuple[str, str] | None:
    """(prefix, secret) of `bw_<prefix>_<secret>`, or None if it does not look like a key."""
    if not raw.startswith(API_KEY_PREFIX):
        return None
    prefix, sep, secret = raw[len(API_KEY_PREFIX):].partition("_")
    if not sep or not prefix or not secret or len(prefix) > 16:
        return None
    return prefix, secret


def find_active_key(raw: str) -> ApiKey | None:
    """The unrevoked key of this text, with its tenant loaded, or None (unscoped on purpose)."""
    parts = split_key(raw)
    if parts is None:
        return None
    prefix, secret = parts
    key = (
        ApiKey.all_tenants.select_related("tenant")
        .filter(prefix=prefix, revoked_at__isnull=True, tenant__is_active=True)
        .first()
    )
    if key is None or not key.matches(secret):
        return None
    return key


def note_use(key: ApiKey, now: datetime | None = None) -> None:
    """Record that the key was used: at most one UPDATE a minute per key (unscoped: called while authenticating)."""
    now = now or timezone.now()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.all_tenants.filter(pk=key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    key.last_used_at = now


def revoke_key(key: ApiKey, now: datetime | None = None) -> ApiKey:
    """Revoke a key (idempotent: the first revocation time is kept)."""
    if key.revoked_at is None:
        key.revoked_at = now or timezone.now()
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=key.revoked_at)
    return key
