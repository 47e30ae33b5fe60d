"""double_invoice: a subscription renewed twice, or off its schedule.

Renewal invoices (billing_reason `subscription_cycle`) of one subscription
come once per billing interval. Two rules, on consecutive renewal invoices of
the same subscription (the `subscription_id` column):

- twice: two renewal invoices less than `min_gap_hours` apart (for plans
  billed more often than twice that, half the shortest interval instead);
- off schedule: the gap between two consecutive renewal invoices is outside
  the plan interval by more than `tolerance_hours`. The interval is what the
  earlier invoice billed: the period of its subscription lines (the same
  field in every API version), rounded to a whole number of days, weeks or
  months; when the lines say nothing, the interval of the latest stored
  subscription event. A month is 28 to 31 days, so a monthly plan accepts
  28 d − tolerance to 31 d + tolerance (about 27 to 32 days).

An invoice is counted once however many of its events arrive (created,
finalized, paid, ...: one invoice id), and its time is the invoice's own
`created`, so delivery order does not matter; each check looks both at the
renewal before and the renewal after the invoice it evaluates.

What must not fire, and why it does not:
- the first invoice of a subscription: its billing_reason is
  subscription_create, and the first renewal has no renewal before it;
- prorations and plan changes: billing_reason subscription_update, never a
  renewal;
- trial conversions and billing-anchor changes: when, between the two
  renewals, the subscription had another invoice (update, create, threshold,
  manual) or a subscription event that changes its schedule (created,
  paused, resumed, a pending update applied, status trialing or paused,
  previous_attributes with billing_cycle_anchor, trial_end, trial_start,
  status, pause_collection or plan), the schedule was reset on purpose and
  neither rule fires;
- invoices of zero (trials, 100 % coupons) and voided invoices: no money was
  billed twice; they still mark a renewal, so the schedule around them holds.
"""

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from django.db.models import Subquery

from anomalies.detectors.base import Detector, DetectorContext, Finding, Threshold
from anomalies.event_types import SUBSCRIPTION_EVENT_TYPES
from anomalies.models import Severity
from anomalies.registry import register
from anomalies.text import money
from webhooks.payloads import invoice_billing_reason, subscription_interval

CYCLE = "subscription_cycle"
EVALUATED_TYPES = ("invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded")
# Every invoice event that says an invoice of the subscription exists (and whether it was voided).
INVOICE_TYPES = (
    *EVALUATED_TYPES,
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
)
SCHEDULE_EVENTS = {
    "customer.subscription.created",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.pending_update_applied",
}
SCHEDULE_FIELDS = {"billing_cycle_anchor", "trial_end", "trial_start", "status", "pause_collection", "plan"}
# Stripe's longest interval is one year: a renewal more than this apart is not a neighbour.
NEIGHBOUR_WINDOW = timedelta(days=400)
SLACK = timedelta(hours=1)
# Invoices on either side of the evaluated one whose payload fields are read. Two are enough: a renewal
# can only be compared with the renewal next to it when no other invoice of the subscription lies
# between them (any other invoice between them is a schedule change, see _schedule_changed).
NEAREST = 2
HOUR = 3600
DAY = 86400


# --- billing intervals ----------------------------------------------------------------------


def _add_months(start: date, months: int, anchor_day: int) -> date:
    year, month = divmod(start.month - 1 + months, 12)
    year, month = start.year + year, month + 1
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


@lru_cache(maxsize=64)
def _month_span(months: int) -> tuple[int, int]:
    """Shortest and longest time (seconds) between two billing dates `months` apart, any anchor day."""
    shortest, longest = None, 0
    for year in range(2023, 2029):  # includes leap years
        for month in range(1, 13):
            for anchor in range(1, 32):
                start = _add_months(date(year, month, 1), 0, anchor)
                days = (_add_months(start, months, anchor) - start).days
                shortest = days if shortest is None else min(shortest, days)
                longest = max(longest, days)
    return shortest * DAY, longest * DAY


def interval_span(interval: tuple[str, int]) -> tuple[int, int] | None:
    """(shortest, longest) seconds one billing interval can last."""
    unit, count = interval
    if unit == "day":
        return count * DAY, count * DAY
    if unit == "week":
        return count * 7 * DAY, count * 7 * DAY
    if unit == "month":
        return _month_span(count)
    if unit == "year":
        return _month_span(12 * count)
    return None


def interval_from_length(seconds: int) -> tuple[str, int] | None:
    """The billing interval a period of this length is. Months first: the widest reading wins."""
    slack = 2 * HOUR
    for months in range(1, 13):
        shortest, longest = _month_span(months)
        if shortest - slack <= seconds <= longest + slack:
            return ("year", 1) if months == 12 else ("month", months)
    for weeks in range(1, 53):
        if abs(seconds - weeks * 7 * DAY) <= slack:
            return "week", weeks
    for days in range(1, 366):
        if abs(seconds - days * DAY) <= slack:
            return "day", days
    return None


def interval_name(interval: tuple[str, int]) -> str:
    unit, count = interval
    if count == 1:
        return {"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}[unit]
    return f"every {count} {unit}s"


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _billed_period_length(invoice: dict) -> int | None:
    """The longest non-proration line period of an invoice (seconds), or None."""
    lines = invoice.get("lines") if isinstance(invoice, dict) else None
    lines = lines.get("data") if isinstance(lines, dict) else lines
    longest = None
    for line in lines if isinstance(lines, list) else []:
        if not isinstance(line, dict):
            continue
        # Up to acacia `proration` is on the line; from basil under parent.subscription_item_details.
        details = line.get("parent") if isinstance(line.get("parent"), dict) else {}
        details = details.get("subscription_item_details") if isinstance(details, dict) else None
        if line.get("proration") is True or (isinstance(details, dict) and details.get("proration") is True):
            continue
        period = line.get("period") if isinstance(line.get("period"), dict) else {}
        start, end = _int(period.get("start")), _int(period.get("end"))
        if start is not None and end is not None and end > start:
            longest = max(longest or 0, end - start)
    return longest


def _timestamp(value) -> datetime | None:
    value = _int(value)
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _hours(seconds: float) -> str:
    if seconds < 2 * DAY:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / DAY:.1f} days"


@dataclass
class Invoice:
    id: str
    first_pk: int = 0  # one of its events, to read payload fields from
    at: datetime | None = None  # the invoice's own created time
    first_event_at: datetime | None = None
    reason: str = ""
    lines: object = None  # its `lines` list, for the period it billed
    voided: bool = False
    amount: int | None = None
    currency: str = ""
    customer: str = ""
    event_ids: list[str] = field(default_factory=list)

    @property
    def time(self) -> datetime:
        return self.at or self.first_event_at


@register
class DoubleInvoice(Detector):
    name = "double_invoice"
    title = "Double invoice"
    description = (
        "A subscription got two renewal invoices within about a day, or a renewal invoice came far off its "
        "billing interval: the customer may have been billed twice, or a renewal went missing."
    )
    event_types = frozenset(EVALUATED_TYPES)
    thresholds = (
        Threshold("min_gap_hours", 26, 1, 24 * 14, "Two renewal invoices closer than this are a double invoice", int),
        Threshold(
            "tolerance_hours", 25, 1, 24 * 14,
            "How far outside its billing interval a renewal may come before it is flagged", int,
        ),
    )

    def evaluate(self, ctx: DetectorContext, event):
        obj = event.payload.get("data", {}).get("object")
        if not isinstance(obj, dict) or not event.subscription_id or not event.object_id:
            return
        if invoice_billing_reason(obj) != CYCLE:
            return
        if not ctx.first_in_batch(event.object_id):
            return  # the same invoice's other events in this batch see the same stored rows
        subscription = event.subscription_id
        at = _timestamp(obj.get("created")) or event.created
        invoices = self._invoices(ctx, subscription, at, event.object_id, obj)
        if event.object_id not in invoices:  # not stored in this mode (cannot happen via the engine)
            return
        renewals = sorted((i for i in invoices.values() if i.reason == CYCLE), key=lambda i: (i.time, i.id))
        index = next((n for n, i in enumerate(renewals) if i.id == event.object_id), None)
        if index is None:
            return
        pairs = []
        if index > 0:
            pairs.append((renewals[index - 1], renewals[index]))
        if index + 1 < len(renewals):
            pairs.append((renewals[index], renewals[index + 1]))
        for earlier, later in pairs:
            finding = self._check(ctx, subscription, earlier, later, invoices)
            if finding:
                yield finding

    def _invoices(self, ctx, subscription: str, at: datetime, current_id: str, current: dict) -> dict[str, Invoice]:
        """The subscription's invoices nearest `at`, one entry per invoice id (two queries).

        The first query reads columns only; payload fields (the invoice's created
        time, billing reason and lines) are then read by primary key from one
        event of each of the NEAREST invoices on either side, so a long history
        costs no more.
        """
        rows = (
            ctx.events()
            .filter(
                subscription_id=subscription,
                type__in=INVOICE_TYPES,
                created__gte=at - NEIGHBOUR_WINDOW,
                created__lte=at + NEIGHBOUR_WINDOW,
            )
            .order_by("created", "stripe_id")
            .values_list("pk", "object_id", "type", "created", "stripe_id", "amount", "currency", "customer_id")
        )
        invoices: dict[str, Invoice] = {}
        for pk, object_id, kind, created, stripe_id, amount, currency, customer in rows:
            if not object_id:
                continue
            invoice = invoices.setdefault(object_id, Invoice(object_id, first_pk=pk, first_event_at=created))
            invoice.voided = invoice.voided or kind == "invoice.voided"
            if amount is not None:
                invoice.amount, invoice.currency = amount, currency
            invoice.customer = invoice.customer or customer
            invoice.event_ids.append(stripe_id)
        if current_id not in invoices:
            return {}
        ordered = sorted(invoices.values(), key=lambda i: (i.first_event_at, i.id))
        index = ordered.index(invoices[current_id])
        near = ordered[max(0, index - NEAREST): index + NEAREST + 1]
        this = invoices[current_id]
        this.at, this.reason = _timestamp(current.get("created")), invoice_billing_reason(current)
        others = [i.first_pk for i in near if i is not this]
        this.lines = current.get("lines")
        fields = {
            pk: (created, reason, lines)
            for pk, created, reason, lines in ctx.events()
            .filter(pk__in=others)
            .values_list(
                "pk", "payload__data__object__created", "payload__data__object__billing_reason",
                "payload__data__object__lines",
            )
        } if others else {}
        for invoice in near:
            if invoice is not this and invoice.first_pk in fields:
                created, reason, invoice.lines = fields[invoice.first_pk]
                invoice.at = _timestamp(created)
                invoice.reason = reason if isinstance(reason, str) else ""
        return {i.id: i for i in near}

    def _check(self, ctx, subscription, earlier: Invoice, later: Invoice, invoices):
        if earlier.voided or later.voided or earlier.amount == 0 or later.amount == 0:
            return None  # nothing billed twice; the invoice still marks a renewal for its neighbours
        gap = (later.time - earlier.time).total_seconds()
        interval = self._interval(ctx, subscription, earlier, later)
        span = interval_span(interval) if interval else None
        close_limit = ctx.thresholds["min_gap_hours"] * HOUR
        if span:
            close_limit = min(close_limit, span[0] / 2)  # a daily plan renews every 24 h
        tolerance = ctx.thresholds["tolerance_hours"] * HOUR
        if gap < close_limit:
            kind = "twice"
        elif span and not span[0] - tolerance <= gap <= span[1] + tolerance:
            kind = "off_schedule"
        else:
            return None
        if self._schedule_changed(ctx, subscription, earlier, later, invoices):
            return None
        return self._finding(subscription, earlier, later, gap, kind, interval, span, tolerance)

    def _interval(self, ctx, subscription, earlier: Invoice, later: Invoice):
        """The interval the earlier renewal billed: its lines' period, else the subscription's plan."""
        length = _billed_period_length({"lines": earlier.lines})
        interval = interval_from_length(length) if length else None
        if interval:
            return interval
        # The newest subscription event before the later renewal: found by columns, then read by key.
        newest = (
            ctx.events()
            .filter(subscription_id=subscription, type__in=SUBSCRIPTION_EVENT_TYPES, created__lte=later.time)
            .order_by("-created", "-stripe_id")
            .values("pk")[:1]
        )
        snapshot = ctx.events().filter(pk=Subquery(newest)).values_list("payload__data__object", flat=True)
        snapshot = next(iter(snapshot), None)
        return subscription_interval(snapshot) if isinstance(snapshot, dict) else None

    def _schedule_changed(self, ctx, subscription, earlier: Invoice, later: Invoice, invoices) -> bool:
        """Did something between the two renewals reset the billing schedule on purpose?"""
        start, end = earlier.time - SLACK, later.time + SLACK
        for invoice in invoices.values():
            if invoice.id not in (earlier.id, later.id) and invoice.reason != CYCLE and start <= invoice.time <= end:
                return True  # a proration, re-creation, threshold or manual invoice of the subscription
        rows = (
            ctx.events()
            .filter(subscription_id=subscription, type__in=SUBSCRIPTION_EVENT_TYPES, created__gte=start, created__lte=end)
            .values_list("type", "payload__data__previous_attributes", "payload__data__object__status")
        )
        for kind, previous, status in rows:
            if kind in SCHEDULE_EVENTS or status in ("trialing", "paused"):
                return True
            if isinstance(previous, dict) and SCHEDULE_FIELDS & previous.keys():
                return True
        return False

    @staticmethod
    def _finding(subscription, earlier: Invoice, later: Invoice, gap, kind, interval, span, tolerance) -> Finding:
        amount = money(later.amount, later.currency) if later.amount is not None and later.currency else ""
        plan = f"{interval_name(interval)} plan" if interval else "plan"
        if kind == "twice":
            title = f"Subscription {subscription} invoiced twice within {_hours(gap)}" + (
                f" ({amount})" if amount else ""
            )
            what = (
                f"Subscription {subscription} got two renewal invoices {_hours(gap)} apart: {earlier.id} "
                f"({earlier.time:%Y-%m-%d %H:%M} UTC) and {later.id} ({later.time:%Y-%m-%d %H:%M} UTC)"
                f"{f', {amount}' if amount else ''}. The customer may be billed twice for one period: void or "
                "refund the extra invoice and check what created it (a duplicate subscription update, a test "
                "clock, an integration renewing by hand)."
            )
        else:
            early = gap < span[0]
            title = (
                f"{'Early' if early else 'Late'} renewal invoice for {subscription}: "
                f"{_hours(gap)} after the previous one ({plan})"
            )
            what = (
                f"Renewal invoice {later.id} of subscription {subscription} came {_hours(gap)} after the previous "
                f"renewal {earlier.id}, while its {plan} renews every {_hours(span[0])} to {_hours(span[1])} "
                f"(± {_hours(tolerance)}). "
                + (
                    "An early renewal can bill the customer twice for the same period: check the invoice and "
                    "void or credit it if it overlaps."
                    if early
                    else "A late renewal means at least one period may not have been billed: check the "
                    "subscription's invoices in Stripe."
                )
            )
        return Finding(
            fingerprint=subscription,
            severity=Severity.HIGH,
            title=title,
            summary=what,
            occurred_at=later.time,
            occurrence_key=later.id,  # the later invoice of the pair, whichever event revealed it
            customer_id=later.customer or earlier.customer,
            event_ids=tuple(dict.fromkeys([*earlier.event_ids, *later.event_ids])),
            metrics={
                "kind": kind,
                "subscription_id": subscription,
                "invoice_ids": [earlier.id, later.id],
                "invoiced_at": [earlier.time.isoformat(), later.time.isoformat()],
                "gap_hours": round(gap / HOUR, 1),
                "interval": interval_name(interval) if interval else "",
                "expected_days": [round(span[0] / DAY, 2), round(span[1] / DAY, 2)] if span else [],
                "amounts": [earlier.amount, later.amount],
                "currency": later.currency,
            },
        )
