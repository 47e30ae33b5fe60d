"""webhook_lag: Stripe's webhooks reach us late (delivery delay = received_at − created).

Only events delivered by webhook count (source "webhook"): imported or
backfilled events were received whenever someone imported them, and their
delay means nothing. The window is on receipt time: the events received in
the `window_minutes` up to this event's receipt (received_at in (R − window,
R]). Receipt time is what a delivery problem moves: after an outage Stripe
retries the backlog and it all arrives together, however long ago each event
was created; windowing on `created` would spread that backlog over the hours
it was created in. A window that ends at the event's own receipt is fixed by
the data (an event is received once), so processing in any order, or twice,
judges it the same way.

It fires when the window holds at least `min_events` webhook events and their
p95 delay (nearest rank: the value below which 95 % of the window's delays
fall, the maximum for fewer than 20 events) is at least `warning_seconds`
(medium) or `critical_seconds` (critical). The check runs when a late event
(delay at least `warning_seconds`) arrives: a window whose p95 is late always
holds late events, and an on-time event then costs no query at all.

Every event type is a signal, but the registry matches exact types, so this
detector subscribes to an explicit, broad set: every charge.*,
charge.dispute.*, charge.refund.*, invoice.*, invoice_payment.*,
customer.subscription.*, payment_intent.*, checkout.session.*, refund.* and
customer.* type Stripe documents (EVENT_TYPES below). Other types are still
counted in the window; they only do not trigger the check.

One open anomaly per mode (fingerprint "lag"); an occurrence per
`window_minutes` bucket of receipt time and severity, so a lag counts once per
bucket it lasts, and a critical finding in a bucket already counted as a
warning still raises the severity. The anomalies, their occurrences and
severities do not depend on the processing order; within a bucket, the first
finding processed is the one counted, so its times and numbers (first and last
seen, the p95 quoted) are those of whichever late delivery of the bucket was
processed first. occurred_at is the receipt time: for this detector the
receipt is the event of the condition.

Queries per late event: one aggregate (count, and counts at or over each
threshold) over the window on the (tenant, received_at) index; only when it
fires, one read of the window's largest delays for the exact p95 and the
evidence.
"""

from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q

from anomalies.detectors.base import Detector, DetectorContext, Finding, Threshold
from anomalies.models import Severity
from anomalies.registry import register

MAX_LISTED = 20

EVENT_TYPES = frozenset({
    # charges, disputes, refunds
    "charge.captured", "charge.expired", "charge.failed", "charge.pending", "charge.refunded",
    "charge.succeeded", "charge.updated",
    "charge.dispute.closed", "charge.dispute.created", "charge.dispute.funds_reinstated",
    "charge.dispute.funds_withdrawn", "charge.dispute.updated",
    "charge.refund.updated", "refund.created", "refund.failed", "refund.updated",
    # invoices
    "invoice.created", "invoice.deleted", "invoice.finalization_failed", "invoice.finalized",
    "invoice.marked_uncollectible", "invoice.overdue", "invoice.overpaid", "invoice.paid",
    "invoice.payment_action_required", "invoice.payment_attempt_required", "invoice.payment_failed",
    "invoice.payment_succeeded", "invoice.sent", "invoice.upcoming", "invoice.updated", "invoice.voided",
    "invoice.will_be_due", "invoice_payment.paid",
    # subscriptions
    "customer.subscription.created", "customer.subscription.deleted", "customer.subscription.paused",
    "customer.subscription.pending_update_applied", "customer.subscription.pending_update_expired",
    "customer.subscription.resumed", "customer.subscription.trial_will_end", "customer.subscription.updated",
    # payment intents and checkout
    "payment_intent.amount_capturable_updated", "payment_intent.canceled", "payment_intent.created",
    "payment_intent.partially_funded", "payment_intent.payment_failed", "payment_intent.processing",
    "payment_intent.requires_action", "payment_intent.succeeded",
    "checkout.session.async_payment_failed", "checkout.session.async_payment_succeeded",
    "checkout.session.completed", "checkout.session.expired",
    # customers
    "customer.created", "customer.deleted", "customer.updated",
})


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@register
class WebhookLag(Detector):
    name = "webhook_lag"
    title = "Webhook delivery lag"
    description = (
        "Stripe's webhooks reach BillingWatch late: the 95th percentile of the delay between an event's "
        "creation and its delivery, over the last minutes of deliveries, is high. Usually the endpoint was "
        "down or slow and Stripe is retrying."
    )
    event_types = EVENT_TYPES
    thresholds = (
        Threshold("window_minutes", 15, 1, 1440, "Minutes of deliveries the p95 delay is computed over", int),
        Threshold("warning_seconds", 300, 10, 86_400, "p95 delay (seconds) that is a warning", int),
        Threshold("critical_seconds", 1800, 10, 259_200, "p95 delay (seconds) that is critical", int),
        Threshold("min_events", 5, 1, 100_000, "Fewest webhook deliveries in the window to judge it", int),
    )

    def evaluate(self, ctx: DetectorContext, event):
        if event.source != "webhook" or event.received_at is None or event.created is None:
            return
        t = ctx.thresholds
        warning = timedelta(seconds=t["warning_seconds"])
        critical = timedelta(seconds=max(t["critical_seconds"], t["warning_seconds"]))
        if event.received_at - event.created < warning:
            return  # an on-time delivery cannot be what makes a window late
        window = timedelta(minutes=t["window_minutes"])
        received = event.received_at
        deliveries = ctx.events().filter(
            source="webhook", received_at__gt=received - window, received_at__lte=received
        )
        counts = deliveries.aggregate(
            n=Count("id"),
            warning=Count("id", filter=Q(received_at__gte=F("created") + warning)),
            critical=Count("id", filter=Q(received_at__gte=F("created") + critical)),
        )
        n = counts["n"]
        if n < t["min_events"]:
            return
        # Nearest-rank p95 is the k-th smallest delay, k = ceil(0.95 n); it is at least X
        # exactly when at least n - k + 1 delays are at least X.
        at_or_above_p95 = n - (-(-95 * n // 100)) + 1
        if counts["critical"] >= at_or_above_p95:
            severity = Severity.CRITICAL
        elif counts["warning"] >= at_or_above_p95:
            severity = Severity.MEDIUM
        else:
            return
        largest = list(
            deliveries.annotate(delay=ExpressionWrapper(F("received_at") - F("created"), output_field=DurationField()))
            .order_by("-delay", "stripe_id")
            .values_list("stripe_id", "delay")[: max(at_or_above_p95, MAX_LISTED)]
        )
        p95 = largest[at_or_above_p95 - 1][1].total_seconds()
        worst = largest[0][1].total_seconds()
        late = counts["warning"]
        bucket_seconds = int(window.total_seconds())
        bucket = int(received.timestamp()) // bucket_seconds * bucket_seconds
        level = "critical" if severity == Severity.CRITICAL else "warning"
        limit = t["critical_seconds"] if severity == Severity.CRITICAL else t["warning_seconds"]
        yield Finding(
            fingerprint="lag",
            severity=severity,
            title=f"Webhooks arriving late: p95 delay {duration(p95)} over {t['window_minutes']} min",
            summary=(
                f"Of the {n} webhooks received in the {t['window_minutes']} minutes up to "
                f"{received:%Y-%m-%d %H:%M} UTC, {late} arrived {duration(t['warning_seconds'])} or more after "
                f"Stripe created them; the 95th percentile delay is {duration(p95)} (the longest "
                f"{duration(worst)}), at or over the {level} limit of {duration(limit)}. Stripe delivers late "
                "when earlier attempts failed or timed out: check the endpoint's recent deliveries in the Stripe "
                "dashboard (Developers > Webhooks), this server's availability and its response times."
            ),
            occurred_at=received,
            occurrence_key=f"{bucket}:{level}",
            event_ids=tuple(stripe_id for stripe_id, _ in largest[: min(late, MAX_LISTED)]),
            metrics={
                "window_minutes": t["window_minutes"],
                "events": n,
                "late_events": late,
                "p95_seconds": round(p95, 1),
                "max_seconds": round(worst, 1),
                "warning_seconds": t["warning_seconds"],
                "critical_seconds": t["critical_seconds"],
            },
        )
