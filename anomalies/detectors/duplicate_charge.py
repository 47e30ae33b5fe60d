"""duplicate_charge: the same customer charged the same amount twice within minutes.

Counts successful charges only (charge.succeeded), never invoice or
payment-intent events, so one invoice paid by one charge is one payment in
every API version. Two distinct charge ids are needed: Stripe re-sending the
same event, or a charge.updated, is not a second payment.
"""

from datetime import timedelta

from anomalies.detectors.base import Detector, DetectorContext, Finding, Threshold
from anomalies.models import Severity
from anomalies.registry import register
from anomalies.text import money


@register
class DuplicateCharge(Detector):
    name = "duplicate_charge"
    title = "Duplicate charge"
    description = (
        "Two or more successful charges to the same customer for the same amount and currency "
        "within a few minutes: usually a double submit or a retry without an idempotency key."
    )
    event_types = frozenset({"charge.succeeded"})
    thresholds = (
        Threshold("window_seconds", 300, 10, 86400, "How close together two equal charges must be", int),
    )

    def evaluate(self, ctx: DetectorContext, event):
        if not event.customer_id or event.amount is None or not event.currency:
            return
        window = timedelta(seconds=ctx.thresholds["window_seconds"])
        nearby = list(
            ctx.events()
            .filter(
                customer_id=event.customer_id,
                type="charge.succeeded",
                created__gte=event.created - window,
                created__lte=event.created + window,
                amount=event.amount,
                currency=event.currency,
            )
            .exclude(object_id=event.object_id)
            .order_by("created", "object_id")
            .values_list("stripe_id", "object_id", "created")
        )
        if not nearby:
            return
        # All equal charges around this one, this one included, in a stable order.
        charges = sorted({(created, object_id, stripe_id) for stripe_id, object_id, created in nearby}
                         | {(event.created, event.object_id, event.stripe_id)})
        first_at = charges[0][0]
        # One fingerprint per burst: the window it started in, so a later burst is another anomaly.
        bucket = int(first_at.timestamp() // window.total_seconds())
        count = len({object_id for _, object_id, _ in charges})
        yield Finding(
            fingerprint=f"{event.customer_id}:{event.amount}:{event.currency}:{bucket}",
            severity=Severity.HIGH,
            title=f"{count} identical charges of {money(event.amount, event.currency)} to {event.customer_id}",
            summary=(
                f"Customer {event.customer_id} was charged {money(event.amount, event.currency)} {count} times "
                f"within {int(window.total_seconds())} s (charges {', '.join(c[1] for c in charges)}). "
                "Refund the extra charges and check the checkout for double submits or missing idempotency keys."
            ),
            occurred_at=charges[-1][0],
            # Each charge beyond the first is one occurrence, whichever event brought it to light.
            occurrence_key=event.object_id if event.object_id != charges[0][1] else charges[1][1],
            customer_id=event.customer_id,
            event_ids=tuple(c[2] for c in charges),
            metrics={
                "amount": event.amount,
                "currency": event.currency,
                "charge_ids": [c[1] for c in charges],
                "window_seconds": int(window.total_seconds()),
            },
        )
