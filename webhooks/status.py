"""The state of a tenant's event queue, as GET /api/v1/status/ and the dashboard show it."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min, Q
from django.utils import timezone

from webhooks.models import StripeEvent


@dataclass(frozen=True)
class QueueStatus:
    pending_events: int
    failed_events: int
    oldest_pending_age_seconds: float | None
    last_event_received_at: datetime | None


def queue_status(tenant, now: datetime | None = None) -> QueueStatus:
    """Three small indexed queries (processing counts as pending: not done yet).

    Never an aggregate over all of the tenant's events: with a million of them
    that took seconds. Waiting events are in the queue (available_at set, the
    partial queue index), failed ones in the partial index on failed events,
    and the newest arrival is the first row of (tenant, received_at) backwards.
    """
    now = now or timezone.now()
    events = StripeEvent.objects.filter(tenant=tenant)
    waiting = Q(status__in=(StripeEvent.Status.PENDING, StripeEvent.Status.PROCESSING))
    queue = events.filter(available_at__isnull=False).aggregate(
        pending=Count("id", filter=waiting), oldest=Min("received_at", filter=waiting)
    )
    oldest = queue["oldest"]
    return QueueStatus(
        pending_events=queue["pending"],
        failed_events=events.filter(status=StripeEvent.Status.FAILED).count(),
        oldest_pending_age_seconds=round(max(0.0, (now - oldest).total_seconds()), 3) if oldest else None,
        last_event_received_at=events.order_by("-received_at").values_list("received_at", flat=True).first(),
    )
