"""Daily and weekly digest e-mails (opt-in per e-mail channel).

The worker (and `manage.py send_digests`) calls `queue_due_digests()`: each
due channel is claimed by a conditional UPDATE of its next_digest_at (two
workers never queue the same digest), and the digest's content is computed
then and stored on an AlertDelivery, which the normal dispatch sends and
retries. The period is the day or week that ends at the scheduled time, in
the tenant's time zone: open anomalies by severity, anomalies opened and
resolved in the period, revenue (successful charges) per currency versus the
previous period, and "all clear" when nothing happened.
"""

import zoneinfo
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from alerts.models import AlertChannel, AlertDelivery, DigestFrequency, ModeFilter, NoticeKind
from alerts.transports.base import format_amount
from anomalies.models import SEVERITY_RANK, ACTIVE_STATUSES, Anomaly
from tenants.scope import tenant_scope

PERIODS = {DigestFrequency.DAILY: timedelta(days=1), DigestFrequency.WEEKLY: timedelta(days=7)}
MAX_LISTED = 20


def next_digest_at(frequency: str, tz_name: str, after: datetime) -> datetime | None:
    """The next local DIGEST_HOUR:00 after `after` (a Monday for weekly digests)."""
    if frequency not in PERIODS:
        return None
    zone = zoneinfo.ZoneInfo(tz_name)
    local = after.astimezone(zone)
    day = local.date()
    while True:
        candidate = datetime.combine(day, time(settings.BILLINGWATCH_ALERTS_DIGEST_HOUR), tzinfo=zone)
        if candidate > local and (frequency == DigestFrequency.DAILY or candidate.weekday() == 0):
            return candidate
        day += timedelta(days=1)


def _revenue(tenant, livemode: bool, start: datetime, end: datetime) -> dict[str, int]:
    from webhooks.models import StripeEvent

    rows = (
        StripeEvent.objects.filter(
            tenant=tenant, livemode=livemode, type="charge.succeeded", created__gte=start, created__lt=end
        )
        .exclude(currency="")
        .values("currency")
        .annotate(total=Sum("amount"))
    )
    return {row["currency"]: row["total"] or 0 for row in rows}


def build_digest(channel: AlertChannel, end: datetime) -> dict:
    """The digest's content for the period that ends at `end` (inside the tenant's scope)."""
    from alerts.dispatch import anomaly_info

    tenant = channel.tenant
    period = PERIODS[channel.digest]
    start, previous_start = end - period, end - 2 * period
    modes = [True, False] if channel.mode == ModeFilter.BOTH else [channel.mode == ModeFilter.LIVE]
    anomalies = Anomaly.objects.filter(tenant=tenant, livemode__in=modes)
    open_counts = dict(
        anomalies.filter(status__in=ACTIVE_STATUSES).values_list("severity").annotate(n=Count("id")).order_by()
    )
    opened = list(anomalies.filter(created_at__gte=start, created_at__lt=end).order_by("-created_at")[: MAX_LISTED + 1])
    opened_count = anomalies.filter(created_at__gte=start, created_at__lt=end).count()
    resolved_count = anomalies.filter(resolved_at__gte=start, resolved_at__lt=end).count()
    live = modes[0]
    current, previous = _revenue(tenant, live, start, end), _revenue(tenant, live, previous_start, start)
    revenue = []
    for currency in sorted(set(current) | set(previous)):
        now_, before = current.get(currency, 0), previous.get(currency, 0)
        revenue.append(
            {
                "currency": currency.upper(),
                "current": now_,
                "previous": before,
                "current_display": format_amount(now_, currency),
                "previous_display": format_amount(before, currency),
                "change_pct": round((now_ - before) * 100 / before, 1) if before else None,
            }
        )
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    return {
        "frequency": channel.digest,
        "timezone": tenant.timezone,
        "period_start": start.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "period_end": end.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "open_by_severity": [
            {"severity": s, "count": open_counts[s]}
            for s in sorted(open_counts, key=lambda s: -SEVERITY_RANK[s])
        ],
        "opened_count": opened_count,
        "opened": [
            {k: v for k, v in anomaly_info(tenant, a).as_json().items() if k in ("id", "severity", "title", "url")}
            for a in opened[:MAX_LISTED]
        ],
        "resolved_count": resolved_count,
        "revenue": revenue,
        "all_clear": not open_counts and not opened_count and not resolved_count,
    }


def queue_due_digests(now: datetime | None = None, limit: int = 100) -> int:
    """Queue the digest of every channel whose digest is due; returns how many were queued."""
    now = now or timezone.now()
    queued = 0
    due = (
        AlertChannel.all_tenants.select_related("tenant")
        .filter(Q(next_digest_at__lte=now), enabled=True)
        .order_by("next_digest_at")[:limit]
    )
    for channel in due:
        scheduled = channel.next_digest_at
        following = next_digest_at(channel.digest, channel.tenant.timezone, max(now, scheduled))
        with tenant_scope(channel.tenant), transaction.atomic():
            claimed = AlertChannel.objects.filter(pk=channel.pk, next_digest_at=scheduled).update(
                next_digest_at=following
            )
            if not claimed:
                continue  # another worker queued it
            AlertDelivery.objects.create(
                tenant=channel.tenant,
                channel=channel,
                kind=NoticeKind.DIGEST,
                seq=0,
                payload=build_digest(channel, scheduled),
                next_attempt_at=now,
            )
        queued += 1
    return queued
