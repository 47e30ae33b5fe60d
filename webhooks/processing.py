"""Processing claimed events: run the detectors, then settle each event's queue state.

Called by the worker (and by import_events) with ids it has claimed. Each
event runs in its own tenant's scope. An event whose processing raises is
marked failed with the error and retried later with a bounded exponential
backoff; after BILLINGWATCH_MAX_ATTEMPTS it stays failed (no available_at)
until someone reprocesses it. One failing event never blocks the others.
"""

import logging
import traceback
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from anomalies import engine
from anomalies.registry import subscribed_event_types
from tenants.models import Tenant
from tenants.scope import tenant_scope
from webhooks import quotas
from webhooks.models import StripeEvent

logger = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: int
    tenant_id: int
    type: str
    attempts: int


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at 6 h."""
    doublings = min(max(0, attempts - 1), 20)  # 2**20 × 30 s is far past the cap already
    return min(BACKOFF_BASE * 2**doublings, BACKOFF_CAP)


def process_claimed(claimed: list[ClaimedEvent]) -> tuple[int, int]:
    """Process a claimed batch; returns (processed, failed)."""
    by_tenant: dict[int, list[ClaimedEvent]] = defaultdict(list)
    for item in claimed:
        by_tenant[item.tenant_id].append(item)
    tenants = Tenant.objects.select_related("plan").in_bulk(by_tenant.keys())
    processed = failed = 0
    for tenant_id, items in by_tenant.items():
        with tenant_scope(tenants[tenant_id]):
            ok, bad = _process_for_tenant(tenants[tenant_id], items)
        processed += ok
        failed += bad
    return processed, failed


def _process_for_tenant(tenant: Tenant, items: list[ClaimedEvent]) -> tuple[int, int]:
    admitted, held = quotas.record_first_attempts(tenant, [(item.id, item.attempts) for item in items])
    if held:
        quotas.hold(held)
        logger.warning("tenant %s is over its monthly quota: %d events held", tenant.slug, len(held))
        keep = set(admitted)
        items = [item for item in items if item.id in keep]
    subscribed = subscribed_event_types()
    # Payloads are loaded only for events some detector reads.
    needed = [item.id for item in items if item.type in subscribed]
    events = StripeEvent.objects.in_bulk(needed) if needed else {}
    detector_settings = engine.DetectorSettings.for_tenant(tenant) if events else None

    def event_time(item: ClaimedEvent):
        # Detectors see a batch in event time order, whatever the claim order.
        event = events.get(item.id)
        return (event.created.timestamp() if event else 0.0, item.id)

    done: list[int] = []
    failures: list[tuple[ClaimedEvent, str]] = []
    for item in sorted(items, key=event_time):
        event = events.get(item.id)
        if event is None:
            done.append(item.id)
            continue
        event.tenant = tenant
        # No transaction around the event: detectors only read, the engine writes each
        # rule's findings atomically, and a finding applied twice (after a retry) is
        # recognised by its occurrence key.
        try:
            outcome = engine.evaluate_event(event, detector_settings)
            if outcome.errors or event.detector_errors:
                StripeEvent.objects.filter(pk=event.pk).update(detector_errors=outcome.errors)
        except Exception:
            logger.exception("processing event %s failed", event.stripe_id)
            failures.append((item, traceback.format_exc(limit=5)[-4000:]))
        else:
            done.append(item.id)
    now = timezone.now()
    # Settle only rows still held by this claim (same attempt number): if our
    # lease ran out and another worker claimed the event again, it owns it.
    attempts_of = {item.id: item.attempts for item in items}
    for attempts in {attempts_of[pk] for pk in done}:
        StripeEvent.objects.filter(
            pk__in=[pk for pk in done if attempts_of[pk] == attempts],
            status=StripeEvent.Status.PROCESSING,
            attempts=attempts,
        ).update(status=StripeEvent.Status.PROCESSED, available_at=None, processed_at=now, last_error="")
    for item, error in failures:
        final = item.attempts >= settings.BILLINGWATCH_MAX_ATTEMPTS
        StripeEvent.objects.filter(
            pk=item.id, status=StripeEvent.Status.PROCESSING, attempts=item.attempts
        ).update(
            status=StripeEvent.Status.FAILED,
            available_at=None if final else now + retry_delay(item.attempts),
            last_error=error,
        )
    return len(done), len(failures)
