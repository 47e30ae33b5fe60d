"""refund_spike: unusually large refunds, one customer refunded a lot, or refunds eating revenue.

Three rules, each per currency (amounts are never added across currencies):

- single (high): one refund or credit note of at least single_refund minor
  units. A charge.refunded event carries the charge's cumulative
  `amount_refunded`; the refund itself is the increase over
  previous_attributes.amount_refunded when the event has it, else the
  amount of the latest refund in the charge's `refunds` list (not sent by
  default since 2022-11-15), else amount_refunded. A credit note counts its
  `total` (else `amount`), which ingest already stores as the event amount.
- customer (high): one customer refunded at least customer_refunds_24h
  within 24 hours (a window (X - 24 h, X] ending at a refund X); a window
  that is one refund already firing the single rule is left to that rule.
- share (medium, periodic scan): refunds over the trailing window_days reach
  refund_share of gross revenue (the amounts of charge.succeeded in the same
  currency and window), with at least min_refunds refunds and min_revenue of
  revenue, AND at least baseline_multiple (2x) the tenant's usual share: the
  refunds / revenue of the baseline_days (28) before the window. Without
  usable history (baseline revenue under min_revenue) there is no usual
  share to compare with and the rule stays quiet: a tenant's first weeks are
  not "unusual". A usual share of zero makes any share above the threshold
  unusual.

Customer and share rules count charge refunds only (money actually sent
back): a credit note paid out as a refund also produces charge.refunded, and
one credited to the customer's balance returns no money; counting credit
notes there would count the same refund twice.

Fingerprints: "customer:<id>:<currency>" for the single and customer rules
(one anomaly per customer; a refund without customer gets
"<charge or credit note id>:<currency>"), "share:<currency>" for the share
rule. Occurrence keys come from the data: the refund that meets the single
or the customer rule (or both: one finding, one occurrence), as
"<charge id>:<cumulative amount_refunded after it>" (the same refund sent
twice is one refund) or "cn:<credit note id>"; the share rule's key is the
currency and the UTC day of the newest refund in the window, so repeated
scans over the same refunds add nothing and a spike counts once per day
with new refunds.

Queries per event: none for the single rule (the event's own payload); for
a refund with a customer, one read of that customer's refunds in the
currency within 24 h either side (customer index, bounded, payloads of
that customer's refunds only), so refunds delivered in any order complete
the window of the latest one. The share rule is a scan, as it is an
aggregate over weeks and not tied to one event: per scan a count, one
grouped sum of charge amounts, and one read of the refunds' two amount
fields (amount_refunded and previous_attributes.amount_refunded, fields
every API version has; the database extracts them, no payloads travel).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Q, Sum
from django.db.models.fields.json import KT

from anomalies.detectors.base import Detector, DetectorContext, Finding, Threshold
from anomalies.models import Severity
from anomalies.registry import register
from anomalies.text import money

REFUNDED = "charge.refunded"
CREDIT_NOTE = "credit_note.created"
SUCCEEDED = "charge.succeeded"
CUSTOMER_WINDOW = timedelta(hours=24)
MAX_CUSTOMER_REFUNDS = 200
MAX_PAYLOAD_FALLBACKS = 500
MAX_EVENT_IDS = 50


@dataclass(frozen=True, slots=True)
class Refund:
    created: datetime
    key: str  # the refund's identity, whatever event told of it
    amount: int  # this refund, minor units
    currency: str
    customer_id: str
    object_id: str  # the charge or the credit note
    stripe_id: str
    kind: str  # "refund" or "credit note"


def _int(value) -> int | None:
    """An integer from a payload (booleans and numbers in strings are not)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _db_int(value) -> int | None:
    """An integer extracted by the database: PostgreSQL's ->> gives it as text, SQLite as a number."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return _int(value)


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def charge_refund(payload) -> tuple[int, int] | None:
    """(amount of this refund, the charge's cumulative amount_refunded) of a charge.refunded event."""
    data = _dict(_dict(payload).get("data"))
    charge = _dict(data.get("object"))
    total = _int(charge.get("amount_refunded"))
    if total is None or total <= 0:
        return None
    previous = data.get("previous_attributes")
    before = _int(_dict(previous).get("amount_refunded"))
    if before is not None:
        return (total - before, total) if total > before else None
    return _latest_listed_refund(charge, total), total


def _latest_listed_refund(charge: dict, total: int) -> int:
    """The newest refund in the charge's `refunds` list (a list object or, rarely, a plain list)."""
    refunds = charge.get("refunds")
    refunds = _dict(refunds).get("data") if isinstance(refunds, dict) else refunds
    newest, newest_at = None, None
    for refund in refunds if isinstance(refunds, list) else ():
        amount, created = _int(_dict(refund).get("amount")), _int(_dict(refund).get("created")) or 0
        if amount is not None and amount > 0 and (newest_at is None or created > newest_at):
            newest, newest_at = amount, created  # Stripe lists newest first: ties keep the first
    return min(newest, total) if newest is not None else total


def _refund_of(event) -> Refund | None:
    if not event.currency:
        return None
    if event.type == CREDIT_NOTE:
        if event.amount is None or event.amount <= 0 or not event.object_id:
            return None
        return Refund(event.created, f"cn:{event.object_id}", event.amount, event.currency, event.customer_id,
                      event.object_id, event.stripe_id, "credit note")
    return _charge_refund_row(event.created, event.object_id, event.stripe_id, event.currency,
                              event.customer_id, event.payload)


def _charge_refund_row(created, object_id, stripe_id, currency, customer_id, payload) -> Refund | None:
    found = charge_refund(payload)
    if found is None or not object_id:
        return None
    amount, total = found
    return Refund(created, f"{object_id}:{total}", amount, currency, customer_id, object_id, stripe_id, "refund")


def _fingerprint(refund: Refund) -> str:
    if refund.customer_id:
        return f"customer:{refund.customer_id}:{refund.currency}"
    return f"{refund.object_id}:{refund.currency}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@register
class RefundSpike(Detector):
    name = "refund_spike"
    title = "Refund spike"
    description = (
        "A single large refund or credit note, one customer refunded a lot within a day, or refunds "
        "over the last week taking an unusual share of revenue (compared with the tenant's own usual "
        "share): refunds issued by mistake, by a compromised account, or a product problem."
    )
    event_types = frozenset({REFUNDED, CREDIT_NOTE})
    has_scan = True
    thresholds = (
        Threshold("single_refund", 50000, 1, 10**12, "One refund or credit note of at least (minor units)", int),
        Threshold(
            "customer_refunds_24h", 100000, 1, 10**12, "Refunds to one customer within 24 h (minor units)", int
        ),
        Threshold("window_days", 7, 1, 31, "Trailing window of the refund share, in days", int),
        Threshold("refund_share", 0.10, 0.001, 1.0, "Refunds as a share of revenue in the window that fires"),
        Threshold("min_refunds", 3, 1, 100000, "Refunds needed in the window for the share rule", int),
        Threshold("min_revenue", 10000, 0, 10**12, "Revenue needed in the window (and the baseline), minor units",
                  int),
        Threshold("baseline_days", 28, 7, 180, "Days before the window that make the usual refund share", int),
        Threshold("baseline_multiple", 2.0, 1.0, 100.0, "How many times the usual share the window must reach"),
    )

    # --- single refund and one customer ------------------------------------------

    def evaluate(self, ctx: DetectorContext, event):
        refund = _refund_of(event)
        if refund is None:
            return
        t = ctx.thresholds
        if refund.kind != "refund" or not refund.customer_id:
            if refund.amount >= t["single_refund"]:
                yield self._finding(refund, [refund], customer_rule=False, single_rule=True)
            return
        # The windows ending at this refund and at each later one of the customer within 24 h: the
        # rule only grows with more refunds, so whichever refund is processed last completes them.
        refunds = self._customer_refunds(ctx, refund)
        for last in refunds:
            if last.created < refund.created and last.key != refund.key:
                continue
            window = [r for r in refunds if last.created - CUSTOMER_WINDOW < r.created <= last.created]
            single_rule = last.amount >= t["single_refund"]
            customer_rule = sum(r.amount for r in window) >= t["customer_refunds_24h"] and not (
                single_rule and len(window) == 1  # one refund that large is the single rule's alone
            )
            # A later refund is reported here only for the customer rule; its own event reports it alone.
            if customer_rule or (single_rule and last.key == refund.key):
                yield self._finding(last, window, customer_rule, single_rule)

    @staticmethod
    def _customer_refunds(ctx: DetectorContext, refund: Refund) -> list[Refund]:
        """The customer's refunds in the currency within 24 h either side, one per refund, in time order."""
        at = refund.created
        rows = (
            ctx.events()
            .filter(
                customer_id=refund.customer_id,
                type=REFUNDED,
                currency=refund.currency,
                created__gt=at - CUSTOMER_WINDOW,
                created__lt=at + CUSTOMER_WINDOW,
            )
            .order_by("created", "id")
            .values_list("created", "object_id", "stripe_id", "payload")[:MAX_CUSTOMER_REFUNDS]
        )
        by_key: dict[str, Refund] = {refund.key: refund}
        for created, object_id, stripe_id, payload in rows:
            found = _charge_refund_row(created, object_id, stripe_id, refund.currency, refund.customer_id, payload)
            if found and (found.key not in by_key or created < by_key[found.key].created):
                by_key[found.key] = found
        return sorted(by_key.values(), key=lambda r: (r.created, r.key))

    def _finding(self, last: Refund, window: list[Refund], customer_rule: bool, single_rule: bool) -> Finding:
        """One finding per refund that meets a rule: the refund is the occurrence, whichever rule it met."""
        currency = last.currency
        amount = money(last.amount, currency)
        what = "Refund" if last.kind == "refund" else "Credit note"
        whom = f"to {last.customer_id}" if last.customer_id else f"on {last.object_id}"
        total = sum(r.amount for r in window)
        charge_ids = list(dict.fromkeys(r.object_id for r in window))
        if customer_rule:
            refunds = _plural(len(window), "refund")
            title = f"{money(total, currency)} refunded to {last.customer_id} in 24 h ({refunds})"
            summary = (
                f"Customer {last.customer_id} was refunded {money(total, currency)} in {refunds} between {window[0].created:%Y-%m-%d %H:%M} and "
                f"{last.created:%Y-%m-%d %H:%M} UTC (charges {', '.join(charge_ids[:10])}"
                f"{', ...' if len(charge_ids) > 10 else ''})."
                + (f" The latest refund alone, {amount}, is a large one." if single_rule else "")
                + " Check that these refunds were intended: repeated refunds to one customer can be abuse of "
                "a refund policy, an integration refunding in a loop, or a compromised account."
            )
        else:
            title = f"{what} of {amount} {whom}"
            summary = (
                f"A {last.kind} of {amount} was issued {whom} ({last.object_id}) at "
                f"{last.created:%Y-%m-%d %H:%M} UTC. Check that it was intended and who issued it (the Stripe "
                "dashboard shows it on the payment's timeline); a refund by mistake or from a compromised "
                "account or API key looks like this."
            )
        return Finding(
            fingerprint=_fingerprint(last),
            severity=Severity.HIGH,
            title=title,
            summary=summary,
            occurred_at=last.created,
            occurrence_key=last.key,
            customer_id=last.customer_id,
            event_ids=tuple(r.stripe_id for r in window[-MAX_EVENT_IDS:]),
            metrics={
                "rules": [rule for rule, met in (("single", single_rule), ("customer", customer_rule)) if met],
                "kind": last.kind,
                "object_id": last.object_id,
                "amount": last.amount,
                "currency": currency,
                "customer_amount_24h": total if customer_rule else None,
                "customer_refunds_24h": len(window) if customer_rule else None,
                "charge_ids": charge_ids[-MAX_EVENT_IDS:] if customer_rule else [last.object_id],
            },
        )

    # --- refund share (periodic) -----------------------------------------------------

    def scan(self, ctx: DetectorContext, as_of: datetime):
        t = ctx.thresholds
        start = as_of - timedelta(days=t["window_days"])
        baseline_start = start - timedelta(days=t["baseline_days"])
        refund_events = ctx.events().filter(type=REFUNDED, created__gt=baseline_start, created__lte=as_of)
        if refund_events.filter(created__gt=start).count() < t["min_refunds"]:
            return
        revenue = {
            currency: (window or 0, baseline or 0)
            for currency, window, baseline in ctx.events()
            .filter(type=SUCCEEDED, created__gt=baseline_start, created__lte=as_of, amount__gt=0)
            .exclude(currency="")
            .order_by()
            .values("currency")
            .annotate(window=Sum("amount", filter=Q(created__gt=start)),
                      baseline=Sum("amount", filter=Q(created__lte=start)))
            .values_list("currency", "window", "baseline")
        }
        if not any(window >= t["min_revenue"] for window, _ in revenue.values()):
            return
        refunds = self._refunds(refund_events.filter(currency__in=list(revenue)))
        for currency, (window_revenue, baseline_revenue) in sorted(revenue.items()):
            recent = [r for r in refunds if r.currency == currency and r.created > start]
            refunded = sum(r.amount for r in recent)
            if len(recent) < t["min_refunds"] or window_revenue < t["min_revenue"] or window_revenue <= 0:
                continue
            share = refunded / window_revenue
            if share < t["refund_share"] or baseline_revenue < t["min_revenue"] or baseline_revenue <= 0:
                continue
            baseline_refunded = sum(r.amount for r in refunds if r.currency == currency and r.created <= start)
            usual = baseline_refunded / baseline_revenue
            if share < t["baseline_multiple"] * usual:
                continue
            yield self._share_finding(ctx, currency, recent, refunded, window_revenue, share,
                                      baseline_refunded, baseline_revenue, usual, as_of)

    @staticmethod
    def _refunds(queryset) -> list[Refund]:
        """The refunds of charge.refunded events, their amounts extracted by the database."""
        rows = list(
            queryset.order_by("created", "id").values_list(
                "id", "created", "currency", "object_id", "stripe_id",
                KT("payload__data__object__amount_refunded"),
                KT("payload__data__previous_attributes__amount_refunded"),
            )
        )
        # Without previous_attributes the refund is the newest in the charge's refunds list: read those
        # few payloads (bounded); any beyond count their cumulative amount_refunded.
        lacking = [row[0] for row in rows if _db_int(row[6]) is None and _db_int(row[5])][:MAX_PAYLOAD_FALLBACKS]
        fallback = {}
        if lacking:
            for pk, payload in queryset.filter(pk__in=lacking).values_list("id", "payload"):
                fallback[pk] = charge_refund(payload)
        found: dict[str, Refund] = {}
        for pk, created, currency, object_id, stripe_id, refunded, before in rows:
            total, before = _db_int(refunded), _db_int(before)
            if total is None or total <= 0 or not object_id:
                continue
            if before is not None:
                amount = total - before
            elif pk in fallback:
                amount = fallback[pk][0] if fallback[pk] else 0
            else:
                amount = total
            key = f"{object_id}:{total}"
            if amount > 0 and key not in found:
                found[key] = Refund(created, key, amount, currency, "", object_id, stripe_id, "refund")
        return list(found.values())

    def _share_finding(self, ctx, currency, recent, refunded, revenue, share, baseline_refunded,
                       baseline_revenue, usual, as_of) -> Finding:
        t = ctx.thresholds
        days, baseline_days = int(t["window_days"]), int(t["baseline_days"])
        newest = max(recent, key=lambda r: (r.created, r.key))
        return Finding(
            fingerprint=f"share:{currency}",
            severity=Severity.MEDIUM,
            title=(
                f"Refunds at {share:.0%} of revenue over {days} days "
                f"({money(refunded, currency)} of {money(revenue, currency)})"
            ),
            summary=(
                f"{_plural(len(recent), 'refund')} totalling {money(refunded, currency)} in the {days} days to "
                f"{as_of:%Y-%m-%d %H:%M} UTC, against {money(revenue, currency)} of successful charges: "
                f"{share:.1%} of revenue, where the {baseline_days} days before saw {usual:.1%} "
                f"({money(baseline_refunded, currency)} of {money(baseline_revenue, currency)}). Look for a "
                "product, delivery or billing problem behind the refunds, a change in the refund policy, or "
                "refunds issued by mistake."
            ),
            occurred_at=newest.created,
            occurrence_key=f"{currency}:{newest.created.astimezone(UTC).date().isoformat()}",
            event_ids=tuple(r.stripe_id for r in sorted(recent, key=lambda r: (r.created, r.key))[-MAX_EVENT_IDS:]),
            metrics={
                "rule": "share",
                "currency": currency,
                "window_days": days,
                "refunds": len(recent),
                "refunded": refunded,
                "revenue": revenue,
                "share": round(share, 4),
                "baseline_days": baseline_days,
                "baseline_refunded": baseline_refunded,
                "baseline_revenue": baseline_revenue,
                "baseline_share": round(usual, 4),
                "as_of": as_of.isoformat(),
            },
        )


def refunds_in(queryset) -> list[Refund]:
    """The refunds told by these charge.refunded events, each counted once (for metrics and the dashboard)."""
    return RefundSpike._refunds(queryset.filter(type=REFUNDED))
