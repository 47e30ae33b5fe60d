"""Receiving one Stripe webhook delivery: from raw bytes to a stored, queued event.

The order of checks is fixed by DESIGN.md: endpoint (404; 403 when an operator
has disabled the tenant) → size (413) →
per-tenant rate limit (429) → signature (400) → JSON (400) → store (200, or
503 when our own database fails so that Stripe retries for three days).
Every rejection after the endpoint is known is counted on the endpoint, and
nothing of a rejected request is stored as an event.
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, DataError, transaction
from django.utils import timezone

from tenants.scope import tenant_scope
from webhooks import endpoint_cache, ratelimit
from webhooks.models import RejectionReason, StripeEvent, WebhookEndpoint
from webhooks.payloads import NotAStripeEvent, read_event, validate_event
from webhooks.signature import SignatureRejected, verify_signature
from webhooks.store import count_rejection, store_event

logger = logging.getLogger(__name__)

# last_received_at is written at most this often per endpoint, so a burst of
# deliveries does not queue on one row lock.
LAST_RECEIVED_RESOLUTION = timedelta(seconds=1)
TENANT_DISABLED_MESSAGE = (
    "this BillingWatch account is disabled by its operator; deliveries are refused and not stored "
    "until it is enabled again (Stripe retries for up to three days)"
)


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: int
    body: dict
    headers: dict = field(default_factory=dict)


def _error(status: int, message: str, **headers) -> IngestResult:
    return IngestResult(status, {"received": False, "error": message}, headers)


def receive_webhook(token: str, body: bytes, signature_header: str | None) -> IngestResult:
    try:
        cached = endpoint_cache.lookup(token)
    except DatabaseError:
        logger.exception("webhook endpoint lookup failed")
        return _error(503, "storage unavailable, retry later", **{"Retry-After": "30"})
    if cached is None:
        return _error(404, "unknown webhook endpoint")
    endpoint = cached.endpoint
    with tenant_scope(endpoint.tenant):
        try:
            with transaction.atomic():
                return _receive_for_endpoint(cached, body, signature_header)
        except DatabaseError:
            logger.exception("storing webhook for tenant %s failed", endpoint.tenant.slug)
            return _error(503, "storage unavailable, retry later", **{"Retry-After": "30"})


def _receive_for_endpoint(cached: endpoint_cache.CachedEndpoint, body: bytes, signature_header: str | None):
    """Runs in one transaction: the rate-limit token, the counters and the event commit together."""
    endpoint = cached.endpoint
    if not endpoint.enabled:
        count_rejection(endpoint, RejectionReason.ENDPOINT_DISABLED)
        return _error(404, "unknown webhook endpoint")
    if not endpoint.tenant.is_active:
        # An operator disabled the account: refuse without storing. Stripe retries
        # a failed delivery for three days, so re-enabling within that time loses nothing.
        count_rejection(endpoint, RejectionReason.TENANT_DISABLED)
        return _error(403, TENANT_DISABLED_MESSAGE)
    limit = settings.BILLINGWATCH_WEBHOOK_MAX_BYTES
    if len(body) > limit:
        count_rejection(endpoint, RejectionReason.TOO_LARGE)
        return _error(413, f"body larger than {limit} bytes")
    decision = ratelimit.consume_webhook_token(endpoint.tenant)
    if not decision.allowed:
        count_rejection(endpoint, RejectionReason.RATE_LIMITED)
        return _error(429, "rate limit exceeded, retry later", **{"Retry-After": str(decision.retry_after)})

    try:
        body_text = body.decode("utf-8")
    except UnicodeDecodeError:
        count_rejection(endpoint, RejectionReason.INVALID_JSON)
        return _error(400, "body is not UTF-8 text")
    now = timezone.now()
    try:
        verify_signature(
            body_text, signature_header, cached.active_secrets(now), settings.BILLINGWATCH_SIGNATURE_TOLERANCE_SECONDS
        )
    except SignatureRejected as rejected:
        count_rejection(endpoint, rejected.reason)
        return _error(400, rejected.message)

    try:
        data = json.loads(body_text)
    except ValueError:
        count_rejection(endpoint, RejectionReason.INVALID_JSON)
        return _error(400, "body is not valid JSON")
    try:
        validate_event(data)
    except NotAStripeEvent as exc:
        count_rejection(endpoint, RejectionReason.NOT_AN_EVENT)
        return _error(400, str(exc))

    try:
        with transaction.atomic():  # a savepoint, so a refused value leaves the counters intact
            new_id = store_event(
                tenant=endpoint.tenant,
                endpoint=endpoint,
                facts=read_event(data),
                payload_json=body_text,
                source=StripeEvent.Source.WEBHOOK,
                received_at=now,
            )
    except DataError:
        # The database refuses a value (e.g. a \u0000 escape in PostgreSQL
        # jsonb): retrying cannot help, so say so instead of answering 5xx.
        count_rejection(endpoint, RejectionReason.INVALID_JSON)
        return _error(400, "payload contains values that cannot be stored")
    if endpoint.last_received_at is None or now - endpoint.last_received_at >= LAST_RECEIVED_RESOLUTION:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(last_received_at=now)
        endpoint.last_received_at = now  # the cached copy too, so the next request skips the write
    return IngestResult(200, {"received": True, "duplicate": new_id is None})
