"""Periodic scans: when they are due per tenant, and backtests over imported history.

The worker calls `run_due_scans()` between batches. A tenant is claimed by a
conditional UPDATE on its next_scan_at, so two workers never scan the same
tenant at once. A live scan looks at the data as of now; a backtest replays
the scans day by day over a past span (in the tenant's time zone), ending at
the last imported event, so importing last month raises what watching it
live would have raised.
"""

import logging
import zoneinfo
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from anomalies import engine, lifecycle
from tenants.models import Tenant
from tenants.scope import tenant_scope

logger = logging.getLogger(__name__)


def _due(now: datetime) -> Q:
    return Q(next_scan_at__isnull=True) | Q(next_scan_at__lte=now)


def claim_due_tenant(now: datetime) -> Tenant | None:
    interval = timedelta(seconds=settings.BILLINGWATCH_SCAN_INTERVAL_SECONDS)
    for tenant in Tenant.objects.filter(_due(now), is_active=True).order_by("next_scan_at")[:20]:
        claimed = Tenant.objects.filter(_due(now), pk=tenant.pk).update(next_scan_at=now + interval)
        if claimed:
            return tenant
    return None


def run_due_scans(now: datetime | None = None, limit: int = 100) -> int:
    """Scan the tenants whose scan is due; returns how many were scanned."""
    now = now or timezone.now()
    scanned = 0
    while scanned < limit and (tenant := claim_due_tenant(now)):
        with tenant_scope(tenant):
            outcome = engine.run_scans(tenant, as_of=now)
            lifecycle.wake_snoozed(now)
        for error in outcome.errors:
            logger.error("scan of %s failed in %s: %s", tenant.slug, error["detector"], error["error"])
        scanned += 1
    return scanned


def backtest_days(tenant: Tenant, start: datetime, end: datetime) -> list[datetime]:
    """The as-of times of a backtest: each local midnight after `start`, then `end`."""
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    day = start.astimezone(zone).date() + timedelta(days=1)
    points = []
    while (midnight := datetime.combine(day, time.min, tzinfo=zone)) < end:
        points.append(midnight)
        day += timedelta(days=1)
    points.append(end)
    return points


def backtest(tenant: Tenant, start: datetime, end: datetime, only: str | None = None) -> engine.Outcome:
    """Run the periodic scans as of each day of [start, end] (inside the tenant's scope)."""
    outcome = engine.Outcome()
    detector_settings = engine.DetectorSettings.for_tenant(tenant)
    for as_of in backtest_days(tenant, start, end):
        outcome.merge(engine.run_scans(tenant, as_of=as_of, settings=detector_settings, only=only))
    return outcome
