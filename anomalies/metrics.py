"""Billing metrics over a date range, read from the event table's indexed columns.

Days are the tenant's local days (as the revenue_drop detector judges them);
hours are UTC. Amounts are minor units, always per currency. The API and the
dashboard call these functions; the revenue baseline is the revenue_drop
detector's own expectation (anomalies.detectors.revenue_drop.daily_revenue).
"""

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, Q, Sum

from anomalies.detectors.base import DetectorContext
from anomalies.detectors.refund_spike import refunds_in
from anomalies.detectors.revenue_drop import _daily_charges, daily_revenue
from anomalies.sql import epoch_bucket
from webhooks.models import StripeEvent

MAX_DAYS = 92
HOUR = 3600
QUARTER_HOUR = 900  # every UTC offset is a multiple, so local days are whole quarter hours

CHARGE_SUCCEEDED, CHARGE_FAILED = "charge.succeeded", "charge.failed"
DISPUTE_CREATED, CHARGE_REFUNDED = "charge.dispute.created", "charge.refunded"


class MetricsRangeError(ValueError):
    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.message, self.field = message, field


@dataclass(frozen=True)
class DayRange:
    first: date
    last: date
    zone: zoneinfo.ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=self.zone)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def day_range(tenant, first: date, last: date) -> DayRange:
    if last < first:
        raise MetricsRangeError("end must not be before start", "end")
    if (last - first).days + 1 > MAX_DAYS:
        raise MetricsRangeError(f"a range covers at most {MAX_DAYS} days", "start")
    try:
        zone = zoneinfo.ZoneInfo(tenant.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return DayRange(first, last, zone)


def _events(tenant, livemode: bool):
    return StripeEvent.objects.filter(tenant=tenant, livemode=livemode)


def revenue_by_day(tenant, span: DayRange, livemode: bool = True) -> dict[str, list[dict]]:
    """{currency: [{day, amount, baseline}]}: successful charges per local day and what revenue_drop expected."""
    ctx = DetectorContext(tenant, livemode, {}, "revenue_drop")
    series = daily_revenue(ctx, span.first, span.last, span.zone)
    return {
        currency: [{"day": day, "amount": amount, "baseline": baseline} for day, amount, baseline in rows]
        for currency, rows in series.items()
    }


def charges_by_day(tenant, span: DayRange, livemode: bool = True) -> dict[str, dict[date, int]]:
    """{currency: {day: amount}}: successful charges per local day, without the baseline (one aggregate query).

    The same sums as revenue_by_day's `amount`, for totals over periods (the dashboard's today / 7 / 30 days).
    """
    ctx = DetectorContext(tenant, livemode, {}, "revenue_drop")
    return _daily_charges(ctx, span.start, span.end, span.zone)


def charge_success_by_hour(tenant, span: DayRange, livemode: bool = True) -> list[dict]:
    """[{hour, succeeded, failed, success_rate}] for each UTC hour of the range that had charges."""
    rows = (
        _events(tenant, livemode)
        .filter(type__in=(CHARGE_SUCCEEDED, CHARGE_FAILED), created__gte=span.start, created__lt=span.end)
        .annotate(bucket=epoch_bucket("created", HOUR))
        .values("bucket")
        .annotate(
            succeeded=Count("id", filter=Q(type=CHARGE_SUCCEEDED)),
            failed=Count("id", filter=Q(type=CHARGE_FAILED)),
        )
        .order_by("bucket")
    )
    return [
        {
            "hour": datetime.fromtimestamp(row["bucket"] * HOUR, tz=UTC),
            "succeeded": row["succeeded"],
            "failed": row["failed"],
            "success_rate": round(row["succeeded"] / (row["succeeded"] + row["failed"]), 4),
        }
        for row in rows
    ]


def disputes_and_refunds_by_day(tenant, span: DayRange, livemode: bool = True) -> dict[str, list[dict]]:
    """{currency: [{day, disputes, disputed_amount, refunds, refunded_amount}]} per local day of the range."""
    totals: dict[tuple[str, date], list[int]] = {}

    def add(currency: str, day: date, index: int, amount: int, count: int = 1) -> None:
        row = totals.setdefault((currency, day), [0, 0, 0, 0])
        row[index] += count
        row[index + 1] += amount

    disputes = (
        _events(tenant, livemode)
        .filter(type=DISPUTE_CREATED, created__gte=span.start, created__lt=span.end)
        .exclude(currency="")
        .annotate(bucket=epoch_bucket("created", QUARTER_HOUR))
        .values("currency", "bucket")
        .annotate(count=Count("id"), total=Sum("amount"))
        .order_by()
    )
    for row in disputes:
        day = datetime.fromtimestamp(row["bucket"] * QUARTER_HOUR, tz=span.zone).date()
        add(row["currency"], day, 0, int(row["total"] or 0), row["count"])
    refunds = _events(tenant, livemode).filter(created__gte=span.start, created__lt=span.end).exclude(currency="")
    for refund in refunds_in(refunds):
        add(refund.currency, refund.created.astimezone(span.zone).date(), 2, refund.amount)

    result: dict[str, list[dict]] = {}
    for currency in sorted({c for c, _ in totals}):
        result[currency] = []
        for day in span.days():
            disputes_n, disputed, refunds_n, refunded = totals.get((currency, day), [0, 0, 0, 0])
            result[currency].append(
                {"day": day, "disputes": disputes_n, "disputed_amount": disputed,
                 "refunds": refunds_n, "refunded_amount": refunded}
            )
    return result
