"""Adding and expiring an endpoint's signing secrets (a rotation overlaps old and new).

Secrets are write-only outside this module's callers: they are told apart by
their fingerprint, never shown. Saving goes through the model, so the
per-process endpoint cache is cleared by its signals.
"""

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.utils import timezone

from webhooks.models import SigningSecret, WebhookEndpoint, WebhookRejection, validate_signing_secret

MAX_SECRETS_PER_ENDPOINT = 10


class SecretError(ValueError):
    """A refused change; `field` names the bad input (None when it is not one field's fault)."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def add_signing_secret(endpoint: WebhookEndpoint, secret: str, expires_at: datetime | None = None) -> SigningSecret:
    now = timezone.now()
    try:
        validate_signing_secret(secret)
    except ValidationError:
        raise SecretError("invalid", "a Stripe signing secret looks like whsec_ followed by letters and digits",
                          "secret") from None
    if expires_at is not None and expires_at <= now:
        raise SecretError("invalid", "expires_at must be in the future", "expires_at")
    existing = list(SigningSecret.objects.filter(endpoint=endpoint))
    if any(s.secret == secret and s.is_active(now) for s in existing):
        raise SecretError("duplicate", "this secret is already active on the endpoint", "secret")
    if sum(1 for s in existing if s.is_active(now)) >= MAX_SECRETS_PER_ENDPOINT:
        raise SecretError("too_many", f"an endpoint has at most {MAX_SECRETS_PER_ENDPOINT} active secrets")
    return SigningSecret.objects.create(tenant=endpoint.tenant, endpoint=endpoint, secret=secret,
                                        expires_at=expires_at)


def find_secret(endpoint: WebhookEndpoint, fingerprint: str) -> SigningSecret | None:
    return next((s for s in SigningSecret.objects.filter(endpoint=endpoint) if s.fingerprint == fingerprint), None)


def expire_signing_secret(secret: SigningSecret, at: datetime | None = None) -> SigningSecret:
    """The secret stops verifying at `at` (default now); an earlier expiry already set is kept."""
    at = at or timezone.now()
    if secret.expires_at is None or at < secret.expires_at:
        secret.expires_at = at
        secret.save(update_fields=["expires_at"])
    return secret


def rejection_counts(endpoints, days: int = 7, now: datetime | None = None) -> dict[int, dict[str, int]]:
    """{endpoint pk: {reason: rejected deliveries in the last `days` days}} in one grouped query."""
    since = (now or timezone.now()) - timedelta(days=days)
    counts: dict[int, dict[str, int]] = {e.pk: {} for e in endpoints}
    rows = (
        WebhookRejection.objects.filter(endpoint__in=list(counts), hour__gte=since)
        .values("endpoint_id", "reason")
        .annotate(total=Sum("count"))
        .order_by()
    )
    for row in rows:
        counts[row["endpoint_id"]][row["reason"]] = row["total"]
    return counts

