"""silent_lapse: a subscription that looks active but has stopped paying.

A subscription whose latest known state (its newest customer.subscription.*
event up to the scan time) is `active` (not trialing, past_due, unpaid,
canceled or paused, collection not paused, not free: no 100 % coupon and a
non-zero price) should be paid once per billing interval. The lapse clock
starts at the later of its current period start and its last successful
payment (invoice.paid / invoice.payment_succeeded of the subscription, or a
charge.succeeded whose invoice is one of its invoices); when more than one
billing interval plus `grace_days` has passed on that clock with no payment,
the revenue has silently stopped: the renewal events stopped coming, the
subscription is stuck, or BillingWatch is missing its events. Invoices sent
for manual payment (collection_method send_invoice) also get their
days_until_due.

Everything is measured in event time, as of the scan, from events created up
to then; the anomaly's time is the moment the payment became overdue, and a
lapse (one clock start) counts once however many scans see it. A payment
resolves it: evaluate() turns every invoice payment of the subscription into
a Recovery, and a scan that finds a recent payment after a long gap resolves
too (for payments processed before the anomaly existed, as in an import).
A payment delivered late, after the scan that flagged the lapse, still
resolves it: its Recovery is dated at the deadline of the lapse it ends.

The scan is bounded: subscriptions with an event in the last 400 days, the
newest event of each found in one windowed query on columns only, the last
payment of each in one aggregate, and the newest payload of a subscription
read (by primary key, in chunks) only when it was not paid in the last day
plus grace: the status, period, plan and discounts come from there.
"""

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Case, F, IntegerField, Max, Subquery, Value, When
from django.db.models.expressions import Window
from django.db.models.functions import RowNumber

from anomalies.detectors.base import Detector, DetectorContext, Finding, Recovery, Threshold
from anomalies.event_types import SUBSCRIPTION_EVENT_TYPES
from anomalies.models import Severity
from anomalies.registry import register
from anomalies.text import money
from webhooks.payloads import (
    charge_invoice_id,
    subscription_interval,
    subscription_monthly_amount,
    subscription_period,
)

PAYMENT_TYPES = ("invoice.paid", "invoice.payment_succeeded")
INVOICE_TYPES = (
    "invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed",
)
LOOKBACK = timedelta(days=400)
# A scan resolves lapses ended by a payment this recent (a backtest steps one local day: up to 25 h).
RECOVERY_WINDOW = timedelta(hours=26)
SHORTEST_INTERVAL = timedelta(days=1)
CHUNK = 500


def add_interval(start: datetime, interval: tuple[str, int]) -> datetime:
    """`start` plus one billing interval, months keeping the day of month like Stripe does."""
    unit, count = interval
    if unit == "day":
        return start + timedelta(days=count)
    if unit == "week":
        return start + timedelta(weeks=count)
    months = count * (12 if unit == "year" else 1)
    year, month = divmod(start.month - 1 + months, 12)
    year, month = start.year + year, month + 1
    return start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))


def interval_name(interval: tuple[str, int]) -> str:
    unit, count = interval
    if count == 1:
        return {"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}[unit]
    return f"every {count} {unit}s"


def _fully_discounted(subscription: dict) -> bool:
    """A 100 % coupon on the subscription (discount up to acacia, discounts from basil, source.coupon in clover)."""
    entries = [subscription.get("discount")]
    discounts = subscription.get("discounts")
    entries += discounts if isinstance(discounts, list) else []
    for entry in entries:
        if not isinstance(entry, dict):
            continue  # an id: unknown, taken as not free
        coupon = entry.get("coupon")
        if not isinstance(coupon, dict):
            source = entry.get("source")
            coupon = source.get("coupon") if isinstance(source, dict) else None
        percent = coupon.get("percent_off") if isinstance(coupon, dict) else None
        if isinstance(percent, int | float) and not isinstance(percent, bool) and percent >= 100:
            return True
    return False


def _extra_days(subscription: dict) -> int:
    """Payment terms of invoices sent for manual payment."""
    days = subscription.get("days_until_due")
    if subscription.get("collection_method") == "send_invoice" and isinstance(days, int) and days > 0:
        return days
    return 0


@dataclass
class Snapshot:
    event_pk: int
    customer: str
    created: datetime
    stripe_id: str
    amount: int | None
    currency: str


@dataclass
class Lapse:
    period_start: datetime
    last_payment: datetime | None
    clock_start: datetime
    deadline: datetime
    interval: tuple[str, int]
    extra: timedelta


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


@register
class SilentLapse(Detector):
    name = "silent_lapse"
    title = "Silent lapse"
    description = (
        "A subscription still shows as active but no payment has come in for longer than its billing interval "
        "plus a grace period: renewals may have stopped without any failure being reported."
    )
    event_types = frozenset(PAYMENT_TYPES)
    has_scan = True
    thresholds = (
        Threshold("grace_days", 3, 0, 60, "Days past a billing interval before a missing payment counts", int),
    )

    # --- a payment resolves -----------------------------------------------------------------
    def evaluate(self, ctx: DetectorContext, event):
        sub = event.subscription_id
        if not sub or not ctx.has_active_anomaly(sub):
            return  # most payments end nothing: skip the two queries (the scans resolve what this misses)
        # The payment ends the lapse whose clock started before it, so it resolves an anomaly raised at
        # that lapse's deadline even when the payment itself is older (delivered late). It never reaches
        # a lapse whose clock started at or after it: that deadline is later still.
        due = self._deadline_before(ctx, sub, event.created, timedelta(days=ctx.thresholds["grace_days"]))
        yield Recovery(
            fingerprint=sub,
            occurred_at=max(event.created, due) if due else event.created,
            reason=f"Payment received for subscription {sub} (invoice {event.object_id}) "
            f"on {event.created:%Y-%m-%d %H:%M} UTC.",
        )

    def _deadline_before(self, ctx, sub: str, at: datetime, grace: timedelta) -> datetime | None:
        """When the subscription would have lapsed had this payment (at `at`) not come: two indexed queries."""
        window = ctx.events().filter(subscription_id=sub, created__gte=at - LOOKBACK, created__lt=at)
        previous = window.filter(type__in=PAYMENT_TYPES).aggregate(last=Max("created"))["last"]
        # The newest subscription event, found on columns and then read by key (one payload read).
        newest = window.filter(type__in=SUBSCRIPTION_EVENT_TYPES).order_by("-created", "-stripe_id").values("pk")[:1]
        snapshot = next(
            iter(ctx.events().filter(pk=Subquery(newest)).values_list("payload__data__object", flat=True)), None
        )
        if not isinstance(snapshot, dict):
            return None
        interval = subscription_interval(snapshot)
        period_start, _ = subscription_period(snapshot)
        starts = [t for t in (previous, period_start) if t is not None and t < at]
        if interval is None or not starts:
            return None
        return add_interval(max(starts), interval) + grace + timedelta(days=_extra_days(snapshot))

    # --- the periodic scan ------------------------------------------------------------------------
    def scan(self, ctx: DetectorContext, as_of: datetime):
        since = as_of - LOOKBACK
        grace = timedelta(days=ctx.thresholds["grace_days"])
        snapshots = self._latest_snapshots(ctx, since, as_of)
        if not snapshots:
            return
        paid = self._last_payments(ctx, since, as_of)
        # Not paid within the shortest possible interval + grace: worth reading the newest payload
        # (status, period, plan, discounts), from those newest events only.
        candidates = [
            sub for sub in snapshots if sub not in paid or as_of - paid[sub] > SHORTEST_INTERVAL + grace
        ]
        objects = self._objects(ctx, [snapshots[sub].event_pk for sub in candidates])
        lapsed: dict[str, Lapse] = {}
        for sub in candidates:
            lapse = self._lapse(objects.get(snapshots[sub].event_pk), paid.get(sub), as_of, grace)
            if lapse:
                lapsed[sub] = lapse
        if lapsed:
            self._count_charges(ctx, lapsed, snapshots, since, as_of)
        for sub, lapse in sorted(lapsed.items()):
            yield self._finding(sub, lapse, snapshots[sub], grace)
        yield from self._recoveries(ctx, snapshots, paid, set(lapsed), since, as_of, grace)

    def _latest_snapshots(self, ctx, since, as_of) -> dict[str, Snapshot]:
        """The newest subscription event of each subscription seen in the window (one query)."""
        # At the same second, deleted comes after updated, which comes after created.
        order = Case(
            When(type="customer.subscription.deleted", then=Value(3)),
            When(type="customer.subscription.created", then=Value(1)),
            default=Value(2),
            output_field=IntegerField(),
        )
        rows = (
            ctx.events()
            .filter(type__in=SUBSCRIPTION_EVENT_TYPES, created__gt=since, created__lte=as_of)
            .exclude(subscription_id="")
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("subscription_id")],
                    order_by=[F("created").desc(), order.desc(), F("stripe_id").desc()],
                )
            )
            .filter(rank=1)
            .values_list("pk", "subscription_id", "customer_id", "created", "stripe_id", "amount", "currency")
        )
        return {
            sub: Snapshot(pk, customer, created, stripe_id, amount, currency)
            for pk, sub, customer, created, stripe_id, amount, currency in rows
        }

    def _last_payments(self, ctx, since, as_of) -> dict[str, datetime]:
        """The latest invoice payment of each subscription in the window (one aggregate)."""
        return dict(
            ctx.events()
            .filter(type__in=PAYMENT_TYPES, created__gt=since, created__lte=as_of)
            .exclude(subscription_id="")
            .order_by()
            .values("subscription_id")
            .annotate(last=Max("created"))
            .values_list("subscription_id", "last")
        )

    def _objects(self, ctx, pks: list[int]) -> dict[int, dict]:
        objects = {}
        for chunk in _chunks(pks):
            objects.update(ctx.events().filter(pk__in=chunk).values_list("pk", "payload__data__object"))
        return objects

    def _lapse(self, obj, last_payment, as_of, grace) -> Lapse | None:
        if not isinstance(obj, dict) or obj.get("status") != "active":
            return None
        if obj.get("pause_collection") or _fully_discounted(obj) or subscription_monthly_amount(obj) == 0:
            return None
        period_start, _ = subscription_period(obj)
        interval = subscription_interval(obj)
        if period_start is None or interval is None or period_start > as_of:
            return None
        extra = grace + timedelta(days=_extra_days(obj))
        clock_start = max(period_start, last_payment) if last_payment else period_start
        deadline = add_interval(clock_start, interval) + extra
        if as_of <= deadline:
            return None
        return Lapse(period_start, last_payment, clock_start, deadline, interval, extra)

    def _count_charges(self, ctx, lapsed: dict[str, Lapse], snapshots, since, as_of) -> None:
        """Successful charges of the lapsed subscriptions' invoices (charge.invoice, up to acacia) also count."""
        invoice_of = {}
        for chunk in _chunks(sorted(lapsed)):
            invoice_of.update(
                (invoice, sub)
                for sub, invoice in ctx.events()
                .filter(subscription_id__in=chunk, type__in=INVOICE_TYPES, created__gt=since, created__lte=as_of)
                .values_list("subscription_id", "object_id")
                .distinct()
            )
        customers = sorted({snapshots[sub].customer for sub in lapsed if snapshots[sub].customer})
        if not invoice_of or not customers:
            return
        earliest = min(lapse.clock_start for lapse in lapsed.values())
        for chunk in _chunks(customers):
            charges = (
                ctx.events()
                .filter(type="charge.succeeded", customer_id__in=chunk, created__gt=earliest, created__lte=as_of)
                .values_list("created", "payload__data__object__invoice")
            )
            for created, invoice in charges:
                sub = invoice_of.get(charge_invoice_id({"invoice": invoice}) or "")
                lapse = lapsed.get(sub)
                if lapse is None or created <= lapse.clock_start:
                    continue
                lapse.last_payment = created
                lapse.clock_start = created
                lapse.deadline = add_interval(created, lapse.interval) + lapse.extra
                if as_of <= lapse.deadline:
                    del lapsed[sub]

    def _recoveries(self, ctx, snapshots, paid, lapsed: set[str], since, as_of, grace):
        """Resolve lapses that a recent payment ended (the payment may have been processed before the finding)."""
        recent = sorted(sub for sub, at in paid.items() if at > as_of - RECOVERY_WINDOW and sub not in lapsed)
        if not recent:
            return
        window_start = as_of - RECOVERY_WINDOW
        first_recent, previous = {}, {}
        for chunk in _chunks(recent):
            rows = (
                ctx.events()
                .filter(type__in=PAYMENT_TYPES, subscription_id__in=chunk, created__gt=since, created__lte=as_of)
                .values_list("subscription_id", "created")
            )
            for sub, created in rows:
                if created > window_start:
                    first_recent[sub] = min(first_recent.get(sub, created), created)
                else:
                    previous[sub] = max(previous.get(sub, created), created)
        # Only a payment after a gap longer than any interval + grace can have ended a lapse.
        gapped = [
            sub for sub in recent
            if sub not in previous or first_recent[sub] - previous[sub] > SHORTEST_INTERVAL + grace
        ]
        objects = self._objects(ctx, [snapshots[sub].event_pk for sub in gapped if sub in snapshots])
        for sub in gapped:
            obj = objects.get(snapshots[sub].event_pk) if sub in snapshots else None
            interval = subscription_interval(obj) if isinstance(obj, dict) else None
            if sub in previous and interval is not None:
                extra = grace + timedelta(days=_extra_days(obj))
                if first_recent[sub] <= add_interval(previous[sub], interval) + extra:
                    continue  # paid on time: nothing had lapsed
            yield Recovery(
                fingerprint=sub,
                occurred_at=as_of,
                reason=f"Subscription {sub} was paid again on {first_recent[sub]:%Y-%m-%d %H:%M} UTC.",
            )

    @staticmethod
    def _finding(sub: str, lapse: Lapse, snapshot: Snapshot, grace: timedelta) -> Finding:
        plan = interval_name(lapse.interval)
        price = (
            f" ({money(snapshot.amount, snapshot.currency)} {plan})"
            if snapshot.amount is not None and snapshot.currency
            else f" ({plan})"
        )
        if lapse.last_payment and lapse.last_payment >= lapse.period_start:
            since_text = f"its last payment on {lapse.last_payment:%Y-%m-%d}"
        else:
            since_text = f"its current period began on {lapse.period_start:%Y-%m-%d}"
        last = f"{lapse.last_payment:%Y-%m-%d %H:%M} UTC" if lapse.last_payment else "none in the last 400 days"
        return Finding(
            fingerprint=sub,
            severity=Severity.MEDIUM,
            title=f"Active subscription {sub} unpaid since {lapse.clock_start:%Y-%m-%d}{price}",
            summary=(
                f"Subscription {sub}{f' of customer {snapshot.customer}' if snapshot.customer else ''} is still "
                f"active (latest event {snapshot.created:%Y-%m-%d %H:%M} UTC), but nothing was paid since "
                f"{since_text}. Last payment: {last}. On a {plan} plan with {lapse.extra.days} days of grace, a "
                f"payment was due by {lapse.deadline:%Y-%m-%d %H:%M} UTC. Check the subscription in Stripe: its "
                "renewal may be stuck or collection switched off, or BillingWatch may be missing its events."
            ),
            occurred_at=lapse.deadline,
            occurrence_key=lapse.clock_start.isoformat(),  # one lapse, however many scans see it
            customer_id=snapshot.customer,
            event_ids=(snapshot.stripe_id,),
            metrics={
                "subscription_id": sub,
                "status": "active",
                "period_start": lapse.period_start.isoformat(),
                "last_payment": lapse.last_payment.isoformat() if lapse.last_payment else None,
                "due_by": lapse.deadline.isoformat(),
                "interval": plan,
                "grace_days": grace.days,
                "amount": snapshot.amount,
                "currency": snapshot.currency,
            },
        )
