"""webhook_silence: no webhook from Stripe for far longer than this account's own traffic predicts.

This is the one detector where receipt time is the signal. It measures an
absence, so it has no event to evaluate: the scan judges the gap between the
last webhook-delivered event received (received_at, wall-clock receipt time)
and as_of, the time of the scan. Events are counted by when they were
received, not created: a silence is about deliveries, and Stripe's `created`
says nothing about when (or whether) an event reached us. Imported and
backfilled events never count: they were received whenever someone imported
them.

It fires (medium; high once the gap is `high_after_hours` or more) when both:

- the gap is at least `min_gap_hours`; and
- seeing no event at all in it is improbable for this account: with the
  hourly rate of each hour of the week (the tenant's time zone) estimated from
  the deliveries received over the previous 3 weeks, the expected count over
  the gap is λ and, the count being Poisson, P(0 events) = exp(−λ) is below
  `p_value`.

Rates come from whole UTC hours between the first delivery in the 3 weeks
(rounded up to the hour) and the start of the gap (rounded down), each hour
assigned to the local hour of the week of its middle; so the gap is never part
of its own baseline, and a partial hour holding the first or last delivery
never reads as a burst. An hour of the week not seen yet (the first week) takes
the rate of the same hour on the days seen of its kind (weekdays, or Saturday
and Sunday), and nothing if no such day was seen: a new account's first
weekend is never held to its weekday traffic. No single hour counts
for more than three times the median of the hours that had deliveries, so a
one-off burst (a bulk update, a developer's test run) does not make that hour
of the week look busy for the next weeks. Quiet nights and weekends are
quiet in the history too, so they never fire; an account with less than
`min_history_days` of deliveries before the gap never fires.

One open anomaly per mode (fingerprint "silence"). A silence is identified by
its last delivery, so later scans of the same silence add nothing, except once
when it becomes high. When deliveries flow again the scan resolves it (a
Recovery dated at the newest delivery, which is after the silence was seen).

Queries per scan: the last delivery (on the (tenant, received_at) index);
only when the gap is long enough, the first delivery of the 3 weeks and one
aggregate of the deliveries per UTC hour, grouped in the database on epoch
arithmetic (native SQL in both databases; TruncHour costs a Python call per
row on SQLite).
"""

import math
import statistics
import zoneinfo
from datetime import UTC, datetime, timedelta

from django.db.models import Count

from anomalies.detectors.base import Detector, DetectorContext, Finding, Recovery, Threshold
from anomalies.models import Severity
from anomalies.registry import register
from anomalies.sql import epoch_bucket

HISTORY = timedelta(weeks=3)
HOUR = 3600
BURST_CAP = 3  # an hour counts for at most this many times the median busy hour


def _zone(tenant) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(tenant.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _hours(seconds: float) -> str:
    return f"{seconds / HOUR:.1f} h"


@register
class WebhookSilence(Detector):
    name = "webhook_silence"
    title = "Webhook silence"
    description = (
        "No webhook from Stripe for far longer than this account's usual traffic at those hours of the week "
        "makes likely: the endpoint may be disabled in Stripe, failing, or unreachable."
    )
    has_scan = True
    thresholds = (
        Threshold("min_gap_hours", 2.0, 0.25, 168.0, "Shortest gap without webhooks (hours) that is judged"),
        Threshold(
            "p_value", 0.001, 1e-9, 0.5,
            "How improbable the silence must be given the usual traffic (probability of no event at all)",
        ),
        Threshold("min_history_days", 3, 1, 21, "Days of webhook deliveries needed before a silence is judged", int),
        Threshold("high_after_hours", 12.0, 1.0, 720.0, "A silence this long (hours) or longer is high severity"),
    )

    def scan(self, ctx: DetectorContext, as_of: datetime):
        t = ctx.thresholds
        deliveries = ctx.events().filter(source="webhook")
        last = (
            deliveries.filter(received_at__lte=as_of)
            .order_by("-received_at", "-id")
            .values_list("received_at", "stripe_id")
            .first()
        )
        if last is None:
            return
        last_at, last_id = last
        gap = (as_of - last_at).total_seconds()
        recovered = f"webhooks are arriving again (last received {last_at:%Y-%m-%d %H:%M} UTC)"
        if gap < t["min_gap_hours"] * HOUR:
            yield Recovery("silence", last_at, recovered)
            return
        first_at = (
            deliveries.filter(received_at__gte=as_of - HISTORY, received_at__lte=last_at)
            .order_by("received_at")
            .values_list("received_at", flat=True)
            .first()
        )
        if first_at is None or last_at - first_at < timedelta(days=t["min_history_days"]):
            return
        history_start = -(-int(first_at.timestamp()) // HOUR)  # whole hours only (hour numbers since the epoch)
        history_end = int(last_at.timestamp()) // HOUR
        if history_end <= history_start:
            return
        rates = _hourly_rates(ctx, deliveries, _zone(ctx.tenant), history_start, history_end)
        expected = _expected(rates, _zone(ctx.tenant), last_at.timestamp(), as_of.timestamp())
        p = math.exp(-expected)
        if p >= t["p_value"]:
            yield Recovery("silence", last_at, recovered)
            return
        high = gap >= t["high_after_hours"] * HOUR
        severity = Severity.HIGH if high else Severity.MEDIUM
        history_days = (history_end - history_start) / 24
        yield Finding(
            fingerprint="silence",
            severity=severity,
            title=f"No webhooks for {_hours(gap)} (about {expected:.0f} expected)",
            summary=(
                f"No Stripe webhook has reached BillingWatch since {last_at:%Y-%m-%d %H:%M} UTC (event {last_id}), "
                f"{_hours(gap)} before this check at {as_of.astimezone(UTC):%Y-%m-%d %H:%M} UTC. From this "
                f"account's deliveries over the previous {history_days:.0f} days at the same hours of the week, "
                f"about {expected:.0f} were expected in that time; the chance of none at all is {p:.1e}. Check the "
                "endpoint in the Stripe dashboard (Developers > Webhooks: disabled, or deliveries failing), the "
                "signing secret (rejected deliveries are counted on the endpoint's page), and that this server "
                "is reachable."
            ),
            occurred_at=as_of,
            occurrence_key=f"{int(last_at.timestamp())}:{last_id}:{'high' if high else 'medium'}",
            event_ids=(last_id,),
            metrics={
                "last_received_at": last_at.astimezone(UTC).isoformat(),
                "last_event_id": last_id,
                "gap_hours": round(gap / HOUR, 2),
                "expected_events": round(expected, 2),
                "p_value": p,
                "history_days": round(history_days, 1),
            },
        )


def _slot(hour_number: int, zone) -> tuple[int, int]:
    """Local (weekday, hour) of the middle of a UTC hour (so half-hour time zones fall on one side)."""
    middle = datetime.fromtimestamp(hour_number * HOUR + HOUR // 2, tz=UTC).astimezone(zone)
    return middle.weekday(), middle.hour


def _hourly_rates(ctx, deliveries, zone, start: int, end: int) -> dict[tuple[int, int], float]:
    """Deliveries per hour for each local hour of the week, over the whole UTC hours [start, end)."""
    rows = (
        deliveries.filter(
            received_at__gte=datetime.fromtimestamp(start * HOUR, tz=UTC),
            received_at__lt=datetime.fromtimestamp(end * HOUR, tz=UTC),
        )
        .annotate(hour=epoch_bucket("received_at", HOUR))
        .values("hour")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {row["hour"]: row["n"] for row in rows}
    busy = [n for n in counts.values() if n > 0]
    cap = max(1.0, BURST_CAP * statistics.median(busy)) if busy else 1.0
    totals: dict[tuple, float] = {}
    exposure: dict[tuple, int] = {}
    for hour in range(start, end):
        weekday, local_hour = _slot(hour, zone)
        # Each hour adds to its hour of the week, and to its hour on days of its kind.
        for key in ((weekday, local_hour), (_kind(weekday), local_hour)):
            totals[key] = totals.get(key, 0.0) + min(counts.get(hour, 0), cap)
            exposure[key] = exposure.get(key, 0) + 1
    return {key: totals[key] / exposure[key] for key in exposure}


def _kind(weekday: int) -> str:
    return "weekend" if weekday >= 5 else "weekday"


def _expected(rates: dict[tuple, float], zone, start: float, end: float) -> float:
    """Expected deliveries in [start, end) (epoch seconds): each hour's rate times the part of it covered."""
    expected = 0.0
    hour = int(start) // HOUR
    while hour * HOUR < end:
        covered = min(end, (hour + 1) * HOUR) - max(start, hour * HOUR)
        if covered > 0:
            weekday, local_hour = _slot(hour, zone)
            rate = rates.get((weekday, local_hour))
            if rate is None:  # an hour of the week not seen yet: the same hour on days of its kind
                rate = rates.get((_kind(weekday), local_hour), 0.0)
            expected += rate * covered / HOUR
        hour += 1
    return expected
