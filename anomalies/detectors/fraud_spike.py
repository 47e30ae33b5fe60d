"""fraud_spike: disputes or early fraud warnings pile up beyond what card networks tolerate.

Card networks put merchants whose dispute rate passes about 0.75% (Visa) or
1% (Mastercard) of their transactions into monitoring programmes with fines,
and Stripe may close such accounts. The rule fires (critical), as of each
dispute or early fraud warning X, when:

- disputes (charge.dispute.created) in the trailing window_days, (X - 30 d, X],
  reach dispute_rate of the successful charges (charge.succeeded) in the
  same window, with at least min_disputes disputes;
- or burst_disputes disputes arrive within burst_hours (however many
  charges), and at least burst_multiple (3x) the tenant's usual number per
  burst_hours over the rest of the window: 5 disputes in a day is a burst
  for a shop that sees one a week, not for one that sees five every day
  (its rate rule speaks for it);
- or early fraud warnings (radar.early_fraud_warning.created) in the window
  reach efw_rate of the charges, with at least min_efw warnings.

A single dispute at a small business is not a spike: the rate rules need
min_disputes / min_efw events, and a window without any successful charge
gives no rate at all (the tenant may not send charge events), leaving only
the burst rule. Disputes and warnings often carry no customer: they are
counted per tenant, never per customer.

One open anomaly per mode (fingerprint "tenant"). The occurrence key is the
dispute or warning X whose window meets a rule: each one that arrives while
the rate is too high is one occurrence, whatever event brought it to light
and however often it is evaluated. Besides the window ending at the event
itself, the windows ending at the latest dispute or warning within
burst_hours and within window_days after it are judged again, so a late
delivery of an older dispute still completes the picture as of the newest.

Queries per event: one indexed read (type + created) of the disputes and
warnings around it (columns only, bounded); only when a window holds
min_disputes disputes or min_efw warnings, one aggregate counting the
successful charges of the (at most three) windows in a single pass.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q

from anomalies.detectors.base import Detector, DetectorContext, Finding, Threshold
from anomalies.models import Severity
from anomalies.registry import register

DISPUTE = "charge.dispute.created"
EFW = "radar.early_fraud_warning.created"
CHARGE = "charge.succeeded"
MAX_ROWS = 5000
MAX_EVENT_IDS = 50


@dataclass(frozen=True, slots=True)
class Signal:
    created: datetime
    kind: str  # "dispute" or "efw"
    object_id: str
    stripe_id: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.object_id}"


def _signals(rows) -> list[Signal]:
    """One signal per dispute / warning id (its earliest event), in time order."""
    found: dict[tuple[str, str], Signal] = {}
    for event_type, created, object_id, stripe_id in rows:
        kind = "dispute" if event_type == DISPUTE else "efw"
        signal = Signal(created, kind, object_id or stripe_id, stripe_id)
        if signal.key not in found or created < found[signal.key].created:
            found[signal.key] = signal
    return sorted(found.values(), key=lambda s: (s.created, s.key))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@register
class FraudSpike(Detector):
    name = "fraud_spike"
    title = "Fraud spike"
    description = (
        "Disputes or early fraud warnings reach a share of your charges that card networks penalise "
        "(0.75% over 30 days), or several disputes arrive within a day. Single disputes at a small "
        "business do not fire."
    )
    event_types = frozenset({DISPUTE, EFW})
    thresholds = (
        Threshold("window_days", 30, 1, 120, "Length of the trailing window for the rates, in days", int),
        Threshold("dispute_rate", 0.0075, 0.0001, 1.0, "Disputes per successful charge in the window that fires"),
        Threshold("min_disputes", 3, 1, 100000, "Disputes needed in the window for the dispute rate rule", int),
        Threshold("burst_disputes", 5, 2, 100000, "Disputes within burst_hours that fire on their own", int),
        Threshold("burst_hours", 24, 1, 168, "Length of the burst window, in hours", int),
        Threshold(
            "burst_multiple", 3.0, 0.0, 100.0,
            "A burst must also be this many times the tenant's usual disputes per burst window (0: off)",
        ),
        Threshold("efw_rate", 0.005, 0.0001, 1.0, "Early fraud warnings per successful charge that fires"),
        Threshold("min_efw", 3, 1, 100000, "Early fraud warnings needed in the window for the warning rule", int),
    )

    def evaluate(self, ctx: DetectorContext, event):
        t = ctx.thresholds
        window = timedelta(days=t["window_days"])
        burst = timedelta(hours=t["burst_hours"])
        at = event.created
        rows = (
            ctx.events()
            .filter(type__in=(DISPUTE, EFW), created__gt=at - window, created__lte=at + window)
            .order_by("created", "id")
            .values_list("type", "created", "object_id", "stripe_id")[:MAX_ROWS]
        )
        signals = _signals(rows)
        # The event's own window ends at its dispute / warning (its first event, if sent twice).
        own = Signal(at, "dispute" if event.type == DISPUTE else "efw", event.object_id or event.stripe_id, "").key
        ends = {s.created for s in signals if s.key == own}
        for horizon in (burst, window):
            later = [s.created for s in signals if at < s.created <= at + horizon]
            if later:
                ends.add(max(later))
        stats = [self._stats(signals, end, window, burst) for end in sorted(ends)]
        # One pass over the successful charges counts every window that needs a rate.
        rated = [s for s in stats if len(s["disputes"]) >= t["min_disputes"] or len(s["warnings"]) >= t["min_efw"]]
        if rated:
            counts = (
                ctx.events()
                .filter(type=CHARGE, created__gt=rated[0]["end"] - window, created__lte=rated[-1]["end"])
                .aggregate(**{
                    f"w{i}": Count("created", filter=Q(created__gt=s["end"] - window, created__lte=s["end"]))
                    for i, s in enumerate(rated)
                })
            )
            for i, s in enumerate(rated):
                s["charges"] = counts[f"w{i}"]
        for s in stats:
            finding = self._judge(t, s)
            if finding:
                yield finding

    @staticmethod
    def _stats(signals: list[Signal], end: datetime, window: timedelta, burst: timedelta) -> dict:
        in_window = [s for s in signals if end - window < s.created <= end]
        disputes = [s for s in in_window if s.kind == "dispute"]
        recent = [s for s in disputes if s.created > end - burst]
        # The tenant's usual disputes per burst window, over the rest of the window.
        rest = window - burst
        usual = (len(disputes) - len(recent)) * (burst / rest) if rest > timedelta(0) else 0.0
        return {
            "end": end,
            "in_window": in_window,
            "disputes": disputes,
            "warnings": [s for s in in_window if s.kind == "efw"],
            "recent": recent,
            "usual_per_burst": usual,
            "charges": None,
        }

    def _judge(self, t, stats: dict):
        end, in_window, charges = stats["end"], stats["in_window"], stats["charges"]
        disputes, warnings, recent = stats["disputes"], stats["warnings"], stats["recent"]
        rules = []
        if len(recent) >= t["burst_disputes"] and len(recent) >= t["burst_multiple"] * stats["usual_per_burst"]:
            rules.append("burst")
        dispute_rate = len(disputes) / charges if charges else None
        efw_rate = len(warnings) / charges if charges else None
        if dispute_rate is not None and len(disputes) >= t["min_disputes"] and dispute_rate >= t["dispute_rate"]:
            rules.append("dispute_rate")
        if efw_rate is not None and len(warnings) >= t["min_efw"] and efw_rate >= t["efw_rate"]:
            rules.append("efw_rate")
        if not rules:
            return None

        # The dispute or warning the window ends at is the occurrence (ties: the first by id).
        last = next(s for s in in_window if s.created == end)
        days, hours = int(t["window_days"]), int(t["burst_hours"])
        facts = []
        if "burst" in rules:
            usual = stats["usual_per_burst"]
            facts.append(
                f"{len(recent)} disputes arrived within {hours} h"
                + (f" (usually about {usual:.1f})" if usual else "")
            )
        if "dispute_rate" in rules:
            facts.append(
                f"{len(disputes)} disputes in {days} days against {charges} successful charges "
                f"({dispute_rate:.2%}; networks act from about {t['dispute_rate']:.2%})"
            )
        if "efw_rate" in rules:
            facts.append(
                f"{len(warnings)} early fraud warnings in {days} days against {charges} successful charges "
                f"({efw_rate:.2%})"
            )
        if rules[0] == "burst":
            title = f"Fraud spike: {_plural(len(recent), 'dispute')} in {hours} h"
        elif rules[0] == "dispute_rate":
            title = (
                f"Fraud spike: {_plural(len(disputes), 'dispute')} in {days} days "
                f"({dispute_rate:.2%} of {charges} charges)"
            )
        else:
            title = (
                f"Fraud spike: {_plural(len(warnings), 'early fraud warning')} in {days} days "
                f"({efw_rate:.2%} of {charges} charges)"
            )
        return Finding(
            fingerprint="tenant",
            severity=Severity.CRITICAL,
            title=title,
            summary=(
                f"As of {end:%Y-%m-%d %H:%M} UTC: {'; '.join(facts)}. Respond to open disputes with evidence "
                "before their due date, refund charges with an early fraud warning before they become "
                "disputes, and tighten Radar rules (3D Secure, velocity limits) to stop the fraud at checkout."
            ),
            occurred_at=end,
            occurrence_key=last.key,
            event_ids=tuple(s.stripe_id for s in in_window[-MAX_EVENT_IDS:]),
            metrics={
                "rules": rules,
                "window_days": days,
                "burst_hours": hours,
                "disputes": len(disputes),
                "disputes_in_burst_window": len(recent),
                "usual_disputes_per_burst_window": round(stats["usual_per_burst"], 3),
                "early_fraud_warnings": len(warnings),
                "charges": charges,
                "dispute_rate": round(dispute_rate, 6) if dispute_rate is not None else None,
                "efw_rate": round(efw_rate, 6) if efw_rate is not None else None,
                "dispute_ids": [s.object_id for s in disputes[-MAX_EVENT_IDS:]],
            },
        )
