"""plan_downgrade: a subscription downgrade that loses a lot of monthly revenue, or a burst of downgrades.

A downgrade is a customer.subscription.updated whose recurring amount per
month falls: payloads.subscription_monthly_amount of the subscription now,
against the same computed from the subscription as it was, i.e. patched
with data.previous_attributes. Stripe lists there the fields that changed:
`items` (the whole previous item list) in every version, and in older
versions also the single-plan fields `plan` and `quantity`; when only those
two are given, they are applied to the subscription's only item (without its
newer `price` twin, which already shows the new plan). Both price and
quantity reductions count, normalised to a month, so moving from a monthly to
a yearly plan of the same monthly worth is not a downgrade. An update with
neither (status, metadata, a renewal in old versions) is not one either, and
neither is a renewal from basil on (its `items` change only their periods).
Subscriptions cannot change currency, so the loss is in the event's currency.

It fires (medium) when either:

- one downgrade loses at least `min_monthly_loss` a month (fingerprint
  "<currency>:<subscription>", so repeated cuts of one subscription while it
  is open are one anomaly); or
- the downgrades in the 7 days up to this one, in its currency, reach
  `weekly_multiple` times the tenant's usual weekly count (the average over
  the 8 weeks before those 7 days, or over the whole weeks of history there
  are, at least 2) and at least `min_downgrades` (fingerprint
  "burst:<ISO week of the event, tenant time>:<currency>"). Without 2 weeks of
  subscription history there is no usual count to compare with, so no burst
  is reported: five downgrades may be an ordinary week for a large account.

An ordinary small downgrade is not an anomaly. Each downgrade event is one
occurrence (its Stripe event id), whichever event brought it to light.

Queries: none for an update that is not a downgrade or for a single large
one (the event's own payload says it). For the burst, one read of the
currency's subscription updates in the trailing week whose
previous_attributes name items, plan or quantity (the database filters on
the key; only those payloads are loaded), one index lookup of the first
subscription update, and, only when the week already has `min_downgrades`,
the same read over the baseline weeks.
"""

import zoneinfo
from datetime import timedelta

from anomalies.detectors.base import Detector, DetectorContext, Finding, Threshold
from anomalies.models import Severity
from anomalies.registry import register
from anomalies.text import money
from webhooks.payloads import subscription_monthly_amount

UPDATED = "customer.subscription.updated"
PLAN_FIELDS = ("items", "plan", "quantity")
TRAILING = timedelta(days=7)
BASELINE_WEEKS = 8
MIN_BASELINE_WEEKS = 2
MAX_LISTED = 20


def monthly_change(payload: dict) -> tuple[int, int] | None:
    """(monthly amount before, after) of a subscription update that changed items, plan or quantity."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return None
    current, previous_attributes = data.get("object"), data.get("previous_attributes")
    if not isinstance(current, dict) or not isinstance(previous_attributes, dict):
        return None
    if not any(field in previous_attributes for field in PLAN_FIELDS):
        return None
    previous = dict(current)
    if "items" in previous_attributes:
        previous["items"] = previous_attributes["items"]
        for field in ("plan", "quantity"):
            if field in previous_attributes:
                previous[field] = previous_attributes[field]
    else:
        # Single-plan fields only: they describe the subscription's only item.
        items = current.get("items")
        items = items.get("data") if isinstance(items, dict) else items
        if isinstance(items, list) and len(items) == 1 and isinstance(items[0], dict):
            item = dict(items[0])
            if "plan" in previous_attributes:
                item["plan"], item["price"] = previous_attributes["plan"], None
            if "quantity" in previous_attributes:
                item["quantity"] = previous_attributes["quantity"]
            previous["items"] = {"object": "list", "data": [item]}
        elif items:
            return None  # several items and no previous item list: cannot tell which one changed
        for field in ("plan", "quantity"):
            if field in previous_attributes:
                previous[field] = previous_attributes[field]
    before, after = subscription_monthly_amount(previous), subscription_monthly_amount(current)
    if before is None or after is None:
        return None
    return before, after


@register
class PlanDowngrade(Detector):
    name = "plan_downgrade"
    title = "Plan downgrade"
    description = (
        "A subscription moved to a cheaper plan or fewer seats losing a lot of monthly revenue, or far more "
        "downgrades than usual in a week."
    )
    event_types = frozenset({UPDATED})
    thresholds = (
        Threshold(
            "min_monthly_loss", 50_000, 100, 10**12,
            "Monthly revenue (minor units) one downgrade must lose to be reported on its own", int,
        ),
        Threshold("weekly_multiple", 3.0, 1.5, 100.0, "How many times the usual weekly count of downgrades is a burst"),
        Threshold("min_downgrades", 5, 2, 10_000, "Fewest downgrades in 7 days that can be a burst", int),
    )

    def evaluate(self, ctx: DetectorContext, event):
        if not event.currency or not event.subscription_id:
            return
        change = monthly_change(event.payload)
        if change is None or change[1] >= change[0]:
            return
        before, after = change
        loss = before - after
        currency, subscription = event.currency, event.subscription_id
        customer = event.customer_id
        t = ctx.thresholds
        if loss >= t["min_monthly_loss"]:
            yield Finding(
                fingerprint=f"{currency}:{subscription}",
                severity=Severity.MEDIUM,
                title=f"Downgrade of {subscription} loses {money(loss, currency)}/month",
                summary=(
                    f"Subscription {subscription}{f' of customer {customer}' if customer else ''} went from "
                    f"{money(before, currency)} to {money(after, currency)} a month (normalised from its billing "
                    f"interval), losing {money(loss, currency)} of monthly recurring revenue. Check whether the "
                    "customer meant to downgrade and whether they need attention from the account team."
                ),
                occurred_at=event.created,
                occurrence_key=event.stripe_id,
                customer_id=customer,
                event_ids=(event.stripe_id,),
                metrics={
                    "subscription_id": subscription,
                    "currency": currency,
                    "monthly_before": before,
                    "monthly_after": after,
                    "monthly_loss": loss,
                },
            )
        yield from self._burst(ctx, event)

    def _burst(self, ctx: DetectorContext, event):
        t = ctx.thresholds
        end = event.created
        recent = _downgrades(ctx, event.currency, end - TRAILING, end, include_end=True)
        if len(recent) < t["min_downgrades"]:
            return
        first = (
            ctx.events().filter(type=UPDATED).order_by("created").values_list("created", flat=True).first()
        )
        if first is None:
            return
        weeks = min(BASELINE_WEEKS, int((end - TRAILING - first) / timedelta(weeks=1)))
        if weeks < MIN_BASELINE_WEEKS:
            return
        baseline_start = end - TRAILING - timedelta(weeks=weeks)
        usual = len(_downgrades(ctx, event.currency, baseline_start, end - TRAILING, include_end=False)) / weeks
        needed = max(t["min_downgrades"], t["weekly_multiple"] * usual)
        if len(recent) < needed:
            return
        currency = event.currency
        loss = sum(before - after for *_, before, after in recent)
        zone = _zone(ctx.tenant)
        year, week, _ = end.astimezone(zone).isocalendar()
        iso_week = f"{year}-W{week:02d}"
        subscriptions = list(dict.fromkeys(sub for _, sub, *_ in recent))
        listed = subscriptions[:MAX_LISTED]
        more = f" (+{len(subscriptions) - len(listed)} more)" if len(subscriptions) > len(listed) else ""
        yield Finding(
            fingerprint=f"burst:{iso_week}:{currency}",
            severity=Severity.MEDIUM,
            title=f"{len(recent)} downgrades in 7 days ({currency.upper()}), usually {usual:.1f} a week",
            summary=(
                f"{len(recent)} subscriptions in {currency.upper()} were downgraded in the 7 days up to "
                f"{end:%Y-%m-%d %H:%M} UTC, against a usual {usual:.1f} a week over the previous {weeks} weeks, "
                f"losing {money(loss, currency)} of monthly recurring revenue in all. Subscriptions: "
                f"{', '.join(listed)}{more}. Look for a common cause: a price change, a product problem, a "
                "competitor's offer, or a broken upgrade path."
            ),
            occurred_at=end,
            occurrence_key=event.stripe_id,
            event_ids=tuple(stripe_id for stripe_id, *_ in recent[-MAX_LISTED:]),
            metrics={
                "currency": currency,
                "iso_week": iso_week,
                "downgrades": len(recent),
                "usual_per_week": round(usual, 2),
                "baseline_weeks": weeks,
                "monthly_loss": loss,
                "subscription_ids": listed,
            },
        )


def _downgrades(ctx, currency: str, start, end, include_end: bool) -> list[tuple]:
    """(stripe_id, subscription_id, created, before, after) of the currency's downgrades in the window."""
    window = {"created__gte": start, "created__lte" if include_end else "created__lt": end}
    rows = (
        ctx.events()
        .filter(type=UPDATED, currency=currency, payload__data__previous_attributes__has_any_keys=PLAN_FIELDS,
                **window)
        .order_by("created", "stripe_id")
        .values_list("stripe_id", "subscription_id", "created", "payload")
    )
    found = []
    for stripe_id, subscription_id, created, payload in rows:
        change = monthly_change(payload)
        if change is not None and change[1] < change[0]:
            found.append((stripe_id, subscription_id or "", created, *change))
    return found


def _zone(tenant) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(tenant.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")
