"""charge_failure_spike: the share of failed charges jumps well above the tenant's own normal.

The rule, for the trailing window (created in (end - window_minutes, end]) that
ends at each failed charge:

- failures / charges >= failure_rate, with at least min_failures failures
  (charges = distinct charges with a charge.succeeded or charge.failed event);
- and the jump is unlikely to be chance: with the tenant's baseline failure
  rate p over the baseline_days before the window, the exact binomial
  upper tail P(X >= failures | n = charges, p) is below p_value. The baseline
  carries a small prior, p = (failures_7d + 1) / (charges_7d + 20), i.e. one
  failure in twenty charges (5%, a typical card decline rate) that the
  tenant's own history quickly outweighs. A tenant with no history therefore
  has a sensible 5% baseline, and one whose failures run at 12% is not paged
  when an hour shows 20%.

So ordinary fluctuation at low volume never fires: 5 failures out of 30
charges is 17%, but against a 5% baseline that happens by chance in one
hour out of sixty (p = 0.016), far above p_value. Severity is high,
critical from critical_rate.

One open anomaly at a time per mode (fingerprint "tenant"). The occurrence
key is the UTC clock hour of the window end, i.e. of the failed charge whose
window met the rule: it depends only on the data (which failures meet the
rule), not on which event is processed or how often, and a spike counts once
per hour it lasts. Only charge.failed is subscribed: successes can only lower
the rate, and counting them on every charge.succeeded would double the work
for the busiest event type. Windows are judged on what is stored when a
failure is processed (an import stores everything first; live Stripe
deliveries are close to time order).

Queries per charge.failed: one aggregate over the window's charges (type +
created index). Only when the window already meets the rate and volume
guards, one aggregate over the baseline days, and, only when it fires, a
bounded read of the window's failed charges for their failure codes.
"""

import math
from collections import Counter
from datetime import UTC, timedelta

from django.db.models import Count, Q

from anomalies.detectors.base import Detector, DetectorContext, Finding, Threshold
from anomalies.models import Severity
from anomalies.registry import register
from webhooks.payloads import charge_failure_code

SUCCEEDED = "charge.succeeded"
FAILED = "charge.failed"

# The baseline prior: this many failures in this many charges, added to the history.
PRIOR_FAILURES = 1
PRIOR_CHARGES = 20

# At most this many failed charges are read (payloads) for the failure-code summary.
MAX_FAILURES_READ = 200
MAX_EVENT_IDS = 50
TOP_CODES = 5


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed term by term in log space (no scipy).

    The first term is exact (math.comb), each next one follows from the ratio
    P(i+1)/P(i) = (n-i)/(i+1) · p/(1-p); the sum stops once the terms, falling
    past the mode, can no longer change a double.
    """
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_odds = math.log(p) - math.log1p(-p)
    log_term = math.log(math.comb(n, k)) + k * math.log(p) + (n - k) * math.log1p(-p)
    logs = [log_term]
    peak = log_term
    for i in range(k, n):
        log_term += math.log(n - i) - math.log(i + 1) + log_odds
        logs.append(log_term)
        peak = max(peak, log_term)
        if i + 1 > n * p and log_term < peak - 50:  # past the mode and below e^-50 of the peak
            break
    return min(1.0, math.exp(peak) * math.fsum(math.exp(x - peak) for x in logs))


def _counts(queryset, distinct: bool = True) -> tuple[int, int]:
    """(failed charges, all charges) in a queryset of charge events.

    `distinct` counts each charge id once (a second event about the same
    charge is not another charge); without it the events are counted, which
    the (tenant, livemode, type, created) index answers alone: for the long
    baseline, where a rare duplicate does not matter.
    """
    field = "object_id" if distinct else "created"
    totals = queryset.aggregate(
        failed=Count(field, distinct=distinct, filter=Q(type=FAILED)),
        succeeded=Count(field, distinct=distinct, filter=Q(type=SUCCEEDED)),
    )
    return totals["failed"], totals["failed"] + totals["succeeded"]


@register
class ChargeFailureSpike(Detector):
    name = "charge_failure_spike"
    title = "Charge failure spike"
    description = (
        "The share of failed charges over the last hour is high and well above the tenant's own "
        "failure rate of the previous week: a broken checkout, a card network or issuer outage, "
        "or an attack. Low volumes and ordinary ups and downs do not fire."
    )
    event_types = frozenset({FAILED})
    thresholds = (
        Threshold("window_minutes", 60, 5, 1440, "Length of the trailing window, in minutes", int),
        Threshold("failure_rate", 0.15, 0.01, 1.0, "Share of failed charges in the window that fires"),
        Threshold("min_failures", 5, 1, 100000, "Failed charges needed in the window", int),
        Threshold(
            "p_value", 0.001, 1e-12, 0.05,
            "How unlikely the failures must be under the tenant's usual failure rate (binomial tail)",
        ),
        Threshold("critical_rate", 0.40, 0.01, 1.0, "Failure share from which the anomaly is critical"),
        Threshold("baseline_days", 7, 1, 60, "Days before the window that make the tenant's usual rate", int),
    )

    def evaluate(self, ctx: DetectorContext, event):
        if not event.object_id:
            return
        t = ctx.thresholds
        window = timedelta(minutes=t["window_minutes"])
        end = event.created
        start = end - window
        charges = ctx.events().filter(type__in=(SUCCEEDED, FAILED))
        failures, total = _counts(charges.filter(created__gt=start, created__lte=end))
        if failures < t["min_failures"] or total == 0 or failures / total < t["failure_rate"]:
            return
        rate = failures / total
        baseline_start = start - timedelta(days=t["baseline_days"])
        base_failures, base_total = _counts(
            charges.filter(created__gt=baseline_start, created__lte=start), distinct=False
        )
        baseline = (base_failures + PRIOR_FAILURES) / (base_total + PRIOR_CHARGES)
        p_value = binomial_upper_tail(failures, total, baseline)
        if p_value >= t["p_value"]:
            return

        failed = list(
            charges.filter(type=FAILED, created__gt=start, created__lte=end)
            .order_by("-created", "-id")
            .values_list("stripe_id", "object_id", "payload")[:MAX_FAILURES_READ]
        )
        codes = Counter()
        seen = set()
        for _, object_id, payload in failed:
            if object_id in seen:
                continue
            seen.add(object_id)
            obj = payload.get("data", {}).get("object") if isinstance(payload, dict) else None
            codes[charge_failure_code(obj) or "unknown"] += 1
        top = sorted(codes.items(), key=lambda item: (-item[1], item[0]))[:TOP_CODES]
        codes_text = ", ".join(f"{code} ×{count}" for code, count in top)
        minutes = int(t["window_minutes"])
        severity = Severity.CRITICAL if rate >= t["critical_rate"] else Severity.HIGH
        hour = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        yield Finding(
            fingerprint="tenant",
            severity=severity,
            title=f"{rate:.0%} of charges failed in {minutes} min ({failures} of {total})",
            summary=(
                f"{failures} of {total} charges failed between {start:%Y-%m-%d %H:%M} and {end:%H:%M} UTC "
                f"({rate:.1%}), against a usual {baseline:.1%} ({base_failures} of {base_total} charges failed "
                f"in the {t['baseline_days']} days before). So many failures are unlikely to be chance "
                f"(p = {p_value:.1e}). Most frequent failure codes"
                f"{' (of the latest ' + str(len(seen)) + ')' if len(failed) == MAX_FAILURES_READ else ''}: "
                f"{codes_text}. Check Stripe's status page and your checkout or payment integration; if the "
                "failures come from few customers or cards, look for card testing."
            ),
            occurred_at=end,
            occurrence_key=hour.strftime("%Y-%m-%dT%H"),
            event_ids=tuple(stripe_id for stripe_id, _, _ in reversed(failed[:MAX_EVENT_IDS])),
            metrics={
                "window_minutes": minutes,
                "window_start": start.isoformat(),
                "window_end": end.isoformat(),
                "failures": failures,
                "charges": total,
                "failure_rate": round(rate, 4),
                "baseline_rate": round(baseline, 4),
                "baseline_failures": base_failures,
                "baseline_charges": base_total,
                "p_value": p_value,
                "failure_codes": [[code, count] for code, count in top],
            },
        )
