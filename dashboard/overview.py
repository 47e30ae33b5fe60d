"""What the overview page shows, read through the same functions as the API (anomalies.metrics, queue_status).

Only sums and slices of those series happen here: the periods shown (today,
7 and 30 days against the period before) and the 48-hour window. A fixed,
small number of queries whatever the tenant's size.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count
from django.utils import timezone

from anomalies import metrics
from anomalies.models import Anomaly, AnomalyStatus, Severity
from webhooks.models import StripeEvent
from webhooks.status import queue_status

PERIODS = (("Today", 1), ("7 days", 7), ("30 days", 30))
ATTENTION = (AnomalyStatus.OPEN, AnomalyStatus.ACKNOWLEDGED)
TIMELINE_SIZE = 8


@dataclass
class Period:
    label: str
    amount: int
    previous: int

    @property
    def change(self) -> float | None:
        return None if not self.previous else (self.amount - self.previous) / self.previous


@dataclass
class CurrencySummary:
    currency: str
    periods: list[Period]
    days: list[dict]  # the last 30 days: {day, amount, baseline}
    disputes: int = 0
    disputed_amount: int = 0
    refunds: int = 0
    refunded_amount: int = 0


@dataclass
class Overview:
    open_by_severity: list[tuple[str, int]]
    open_total: int
    currencies: list[CurrencySummary]
    hours: list[dict]  # the last 48 UTC hours with charges: {hour, succeeded, failed, success_rate}
    success_rate: float | None  # last 24 hours
    charges_24h: int
    timeline: list[Anomaly]
    queue: object
    local_today: object = None
    zone: object = None


def revenue_chart_series(tenant, span, livemode: bool) -> dict[str, list[dict]]:
    """metrics.revenue_by_day for the chart, kept BILLINGWATCH_DASHBOARD_CHART_CACHE_SECONDS per tenant, mode and day.

    The baseline reads every renewal invoice of the 65 days behind the chart (the revenue_drop
    detector's own model): the one part of the page whose cost grows with the account.
    """
    seconds = settings.BILLINGWATCH_DASHBOARD_CHART_CACHE_SECONDS
    if seconds <= 0:
        return metrics.revenue_by_day(tenant, span, livemode)
    key = f"bw:overview:revenue:{tenant.pk}:{int(livemode)}:{span.first}:{span.last}"
    series = cache.get(key)
    if series is None:
        series = metrics.revenue_by_day(tenant, span, livemode)
        cache.set(key, series, seconds)
    return series


def has_events(tenant) -> bool:
    """Until the first event (either mode) arrives the overview is the setup guide."""
    return StripeEvent.objects.filter(tenant=tenant).exists()


def build_overview(tenant, livemode: bool, now=None) -> Overview:
    now = now or timezone.now()
    zone_today = metrics.day_range(tenant, now.date(), now.date()).zone
    today = now.astimezone(zone_today).date()

    counts = dict(
        Anomaly.objects.filter(tenant=tenant, livemode=livemode, status__in=ATTENTION)
        .values_list("severity")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_severity = [(s.value, counts.get(s.value, 0)) for s in reversed(Severity)]

    sixty = metrics.day_range(tenant, today - timedelta(days=59), today)
    totals = metrics.charges_by_day(tenant, sixty, livemode)
    thirty = metrics.day_range(tenant, today - timedelta(days=29), today)
    revenue = revenue_chart_series(tenant, thirty, livemode)
    disputes = metrics.disputes_and_refunds_by_day(tenant, thirty, livemode)
    currencies = []
    for currency in sorted(set(totals) | set(revenue) | set(disputes)):
        amounts = [totals.get(currency, {}).get(day, 0) for day in sixty.days()]
        periods = [Period(label, sum(amounts[-n:]), sum(amounts[-2 * n:-n])) for label, n in PERIODS]
        days = revenue.get(currency) or [{"day": d, "amount": 0, "baseline": None} for d in thirty.days()]
        summary = CurrencySummary(currency, periods, days)
        for row in disputes.get(currency, []):
            summary.disputes += row["disputes"]
            summary.disputed_amount += row["disputed_amount"]
            summary.refunds += row["refunds"]
            summary.refunded_amount += row["refunded_amount"]
        currencies.append(summary)

    since = now - timedelta(hours=48)
    recent = metrics.day_range(tenant, since.astimezone(zone_today).date(), today)
    hours = [h for h in metrics.charge_success_by_hour(tenant, recent, livemode) if h["hour"] >= since]
    last_day = [h for h in hours if h["hour"] >= now - timedelta(hours=24)]
    succeeded = sum(h["succeeded"] for h in last_day)
    failed = sum(h["failed"] for h in last_day)

    timeline = list(
        Anomaly.objects.filter(tenant=tenant, livemode=livemode).order_by("-first_seen_at")[:TIMELINE_SIZE]
    )
    return Overview(
        open_by_severity=by_severity,
        open_total=sum(counts.values()),
        currencies=currencies,
        hours=hours,
        success_rate=succeeded / (succeeded + failed) if succeeded + failed else None,
        charges_24h=succeeded + failed,
        timeline=timeline,
        queue=queue_status(tenant, now),
        local_today=today,
        zone=zone_today,
    )
