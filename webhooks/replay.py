"""Reprocessing a failed event: set it pending again, so the next worker claim runs it.

The event table is the queue (DESIGN.md), so a replay is one conditional
UPDATE: only a failed event moves, and its retry budget starts afresh.
Called in the tenant's scope by the API, and later the dashboard and admin.
"""

from django.utils import timezone

from webhooks.models import StripeEvent


class ReplayError(ValueError):
    """The event cannot be reprocessed; `code` is stable for the API."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def reprocess_event(event: StripeEvent) -> StripeEvent:
    now = timezone.now()
    moved = StripeEvent.objects.filter(pk=event.pk, status=StripeEvent.Status.FAILED).update(
        status=StripeEvent.Status.PENDING, available_at=now, attempts=0
    )
    if not moved:
        event.refresh_from_db(fields=["status"])
        raise ReplayError("invalid_transition", f"only failed events can be reprocessed; this one is {event.status}")
    event.status, event.available_at, event.attempts = StripeEvent.Status.PENDING, now, 0
    return event


def reprocess_failed(tenant) -> int:
    """Queue every failed event of `tenant` again (the operator's "replay failures"); returns how many."""
    from tenants.scope import tenant_scope

    with tenant_scope(tenant):
        return StripeEvent.objects.filter(status=StripeEvent.Status.FAILED).update(
            status=StripeEvent.Status.PENDING, available_at=timezone.now(), attempts=0
        )
