"""Monthly event quotas: over its plan's quota a tenant's events are stored but held.

Webhooks keep answering 200 and every event is stored (billing must never lose
data), but the worker processes at most `plan.monthly_event_quota` events per
calendar month (UTC) for the tenant. The rest are marked `over_quota` and wait
until the operator raises the plan (`change_plan`) or the month rolls over
(`release_past_months`, run by the worker): then they are queued again and
processed like any late delivery.

The quota is counted by the worker, per batch, rather than at ingest: ingest is
the hot path (one row lock per tenant per request would be the price), and the
worker already groups a batch by tenant. So an event is marked over_quota when
a worker reaches it, a few seconds after it was stored.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import transaction
from django.utils import timezone

from tenants.models import MonthlyUsage, Plan, Tenant
from tenants.scope import tenant_scope
from webhooks.models import StripeEvent


def month_of(at: datetime) -> date:
    return at.astimezone(UTC).date().replace(day=1)


@dataclass(frozen=True)
class Usage:
    month: date
    processed: int
    held: int
    quota: int | None

    @property
    def over_quota(self) -> bool:
        return self.quota is not None and (self.held > 0 or self.processed >= self.quota)


def usage(tenant: Tenant, now: datetime | None = None) -> Usage:
    """This month's usage against the plan (what the admin and the tenant's banner show)."""
    month = month_of(now or timezone.now())
    with tenant_scope(tenant):
        row = MonthlyUsage.objects.filter(month=month).values_list("processed", "held").first()
    quota = tenant.plan.monthly_event_quota if tenant.plan_id else None
    return Usage(month, *(row or (0, 0)), quota)


def admit(tenant: Tenant, first_attempts: int, now: datetime | None = None) -> int:
    """How many of `first_attempts` newly claimed events the tenant may have processed now.

    Counts them in this month's usage; the caller holds the others. Retries of an
    event already counted are not passed in (they are always admitted). Called in
    the tenant's scope. One locked row per tenant per batch.
    """
    if first_attempts == 0:
        return 0
    quota = tenant.plan.monthly_event_quota if tenant.plan_id else None
    month = month_of(now or timezone.now())
    with transaction.atomic():
        # Counted without a quota too: the operator's tenant list shows every tenant's month.
        row, _ = MonthlyUsage.objects.select_for_update().get_or_create(month=month)
        allowed = first_attempts if quota is None else max(0, min(first_attempts, quota - row.processed))
        row.processed += allowed
        row.held += first_attempts - allowed
        row.save(update_fields=["processed", "held"])
    return allowed


def hold(ids: list[int]) -> None:
    """Mark claimed events over_quota: out of the queue until released."""
    StripeEvent.objects.filter(pk__in=ids, status=StripeEvent.Status.PROCESSING).update(
        status=StripeEvent.Status.OVER_QUOTA, available_at=None
    )


def release(tenant: Tenant) -> int:
    """Queue the tenant's held events again (they are counted when processed); returns how many."""
    with tenant_scope(tenant), transaction.atomic():
        released = StripeEvent.objects.filter(status=StripeEvent.Status.OVER_QUOTA).update(
            status=StripeEvent.Status.PENDING, available_at=timezone.now(), attempts=0
        )
        MonthlyUsage.objects.filter(held__gt=0).update(held=0)
    return released


def change_plan(tenant: Tenant, plan: Plan | None) -> int:
    """Put the tenant on `plan`; held events are released when the new plan leaves room.

    Returns how many held events were queued again.
    """
    tenant.plan = plan
    tenant.save(update_fields=["plan"])
    now = usage(tenant)
    if now.held and (now.quota is None or now.processed < now.quota):
        return release(tenant)
    return 0


def release_past_months(now: datetime | None = None) -> int:
    """New month, new quota: release what was held in earlier months (run by the worker)."""
    month = month_of(now or timezone.now())
    tenant_ids = set(
        MonthlyUsage.all_tenants.filter(month__lt=month, held__gt=0).values_list("tenant_id", flat=True)
    )
    return sum(release(tenant) for tenant in Tenant.objects.filter(pk__in=tenant_ids))


def record_first_attempts(tenant: Tenant, ids_and_attempts: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Split a tenant's claimed events into (to process, to hold) under its quota.

    Events are taken in the order given; only first attempts count (a retry was
    counted the first time). The caller marks the held ones with `hold`.
    """
    first = [pk for pk, attempts in ids_and_attempts if attempts == 1]
    allowed = admit(tenant, len(first))
    held = set(first[allowed:])
    return [pk for pk, _ in ids_and_attempts if pk not in held], sorted(held)

