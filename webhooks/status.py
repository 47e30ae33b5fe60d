"""The state of a tenant's event queue, as GET /api/v1/status/ and the dashboard show it."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from webhooks.models import StripeEvent


@dataclass(frozen=True)
class QueueStatus:
    pending_events: int
    failed_events: int
    oldest_pending_age_seconds: float | None
    last_event_received_at: datetime | None


def queue_status(tenant, now: datetime | None = None) -> QueueStatus:
    """One aggregate query over the tenant's events (processing counts as pending: not done yet)."""
    now = now or timezone.now()
    waiting = Q(status__in=(StripeEvent.Status.PENDING, StripeEvent.Status.PROCESSING))
    row = StripeEvent.objects.filter(tenant=tenant).aggregate(
        pending=Count("id", filter=waiting),
        failed=Count("id", filter=Q(status=StripeEvent.Status.FAILED)),
        oldest=Min("received_at", filter=waiting),
        last=Max("received_at"),
    )
    oldest = row["oldest"]
    return QueueStatus(
        pending_events=row["pending"],
        failed_events=row["failed"],
        oldest_pending_age_seconds=round(max(0.0, (now - oldest).total_seconds()), 3) if oldest else None,
        last_event_received_at=row["last"],
    )
