"""dunning_failure: Stripe gave up collecting an invoice, or a subscription ended unpaid.

Three facts mean the retry schedule (dunning) is over and money was not collected:

- final failure: an `invoice.payment_failed` with `next_payment_attempt`
  explicitly null after at least `min_attempts` attempts (attempt_count). A
  payload without the field says nothing (old fixtures and some API versions
  omit it), and a null after a single attempt is not a retry schedule running
  out: it is what a failed sign-up (billing_reason subscription_create, the
  subscription then expires as incomplete), a manual invoice without automatic
  collection, or a send_invoice invoice paid by hand look like. Those are
  skipped, as are invoices already paid or void;
- unpaid: a `customer.subscription.updated` to status `unpaid` whose
  previous_attributes say it was something else (or that has no
  previous_attributes at all). An update of a subscription that was already
  unpaid is not a new fact;
- canceled unpaid: a subscription canceled (`customer.subscription.deleted`, or
  updated to `canceled`) whose latest invoice outcome before the cancellation
  (the newest paid / payment_succeeded / payment_failed / marked_uncollectible /
  voided event of its invoices, within `unpaid_lookback_days`) is a failure or
  an uncollectible mark. A voided or paid invoice means nothing was left owed.

All three are about one subscription, so they share its fingerprint
("subscription:<id>"): the final failure, the move to unpaid and the
cancellation of the same incident are one anomaly, with one occurrence per
stage (keyed by stage and invoice id), whatever the delivery order. An invoice
outside any subscription has the fingerprint "invoice:<id>". A failure that
arrives after the cancellation it explains is matched the other way round, so
the order the events are processed in does not matter.
"""

from datetime import timedelta

from django.db.models import Case, IntegerField, Value, When

from anomalies.detectors.base import Detector, DetectorContext, Finding, Threshold
from anomalies.models import Severity
from anomalies.registry import register
from anomalies.text import money
from webhooks.payloads import invoice_billing_reason, invoice_is_paid, subscription_period

PAYMENT_FAILED = "invoice.payment_failed"
SUB_UPDATED = "customer.subscription.updated"
SUB_DELETED = "customer.subscription.deleted"
PAID_OUTCOMES = ("invoice.paid", "invoice.payment_succeeded", "invoice.voided")
UNPAID_OUTCOMES = ("invoice.payment_failed", "invoice.marked_uncollectible")
OUTCOME_TYPES = PAID_OUTCOMES + UNPAID_OUTCOMES


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _id_of(value) -> str:
    """A Stripe reference: an id, or the object itself when expanded (same in every version)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def _transition_to(event, status: str) -> bool:
    """Did this update move the subscription to `status` (not merely touch one already there)?"""
    previous = _dict(event.payload.get("data")).get("previous_attributes")
    if not isinstance(previous, dict) or not previous:
        return True  # nothing says what it was before: take the status at face value
    if "status" not in previous:
        return False  # the status did not change in this update
    return previous["status"] != status


@register
class DunningFailure(Detector):
    name = "dunning_failure"
    title = "Dunning failure"
    description = (
        "Stripe stopped retrying a failed invoice, or a subscription became unpaid or was canceled with its "
        "last invoice unpaid: the revenue will not come in by itself."
    )
    event_types = frozenset({PAYMENT_FAILED, SUB_UPDATED, SUB_DELETED})
    thresholds = (
        Threshold(
            "min_attempts", 2, 1, 20,
            "Payment attempts an invoice must have had before a failure with no retry scheduled counts as final",
            int,
        ),
        Threshold(
            "unpaid_lookback_days", 90, 1, 400,
            "How long before a cancellation the failed invoice may have failed and still count as unpaid",
            int,
        ),
    )

    def evaluate(self, ctx: DetectorContext, event):
        obj = _dict(_dict(event.payload.get("data")).get("object"))
        if not obj:
            return
        if event.type == PAYMENT_FAILED:
            yield from self._final_failure(ctx, event, obj)
            yield from self._cancellation_after(ctx, event)
            return
        subscription = event.subscription_id
        if not subscription:
            return
        status = obj.get("status")
        if event.type == SUB_UPDATED and status == "unpaid" and _transition_to(event, "unpaid"):
            yield from self._unpaid(ctx, event, obj)
        elif (event.type == SUB_DELETED and status in ("canceled", None)) or (
            event.type == SUB_UPDATED and status == "canceled" and _transition_to(event, "canceled")
        ):
            yield from self._canceled_unpaid(ctx, subscription, event.created, event.stripe_id, event.customer_id)

    # --- final failure of an invoice ------------------------------------------
    def _final_failure(self, ctx, event, invoice: dict):
        if "next_payment_attempt" not in invoice or invoice["next_payment_attempt"] is not None:
            return  # a retry is scheduled, or the payload cannot tell
        attempts = invoice.get("attempt_count")
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < ctx.thresholds["min_attempts"]:
            return
        if invoice.get("collection_method") == "send_invoice":
            return  # no automatic retries to run out of
        if invoice_billing_reason(invoice) == "subscription_create":
            return  # a failed sign-up: the subscription expires as incomplete, nothing was being dunned
        if invoice_is_paid(invoice) is True or invoice.get("status") in ("void", "draft"):
            return
        if not event.object_id:
            return
        invoice_id, subscription = event.object_id, event.subscription_id
        due = invoice.get("amount_due")
        due = due if isinstance(due, int) and not isinstance(due, bool) else event.amount
        amount = f" ({money(due, event.currency)})" if due is not None and event.currency else ""
        of_sub = f" of subscription {subscription}" if subscription else ""
        whose = f" to customer {event.customer_id}" if event.customer_id else ""
        yield Finding(
            fingerprint=f"subscription:{subscription}" if subscription else f"invoice:{invoice_id}",
            severity=Severity.HIGH,
            title=f"Final payment attempt failed for invoice {invoice_id}{amount}",
            summary=(
                f"Invoice {invoice_id}{of_sub}{whose} failed its payment attempt {attempts} and Stripe has no "
                f"further retry scheduled, so the amount due{amount} will not be collected automatically. Contact "
                "the customer to update their payment method, or retry the invoice once they have."
            ),
            occurred_at=event.created,
            occurrence_key=f"final:{invoice_id}",
            customer_id=event.customer_id,
            event_ids=(event.stripe_id,),
            metrics={
                "stage": "final_failure",
                "invoice_id": invoice_id,
                "subscription_id": subscription,
                "attempt_count": attempts,
                "amount_due": due,
                "currency": event.currency,
            },
        )

    # --- subscription moved to unpaid ------------------------------------------
    def _unpaid(self, ctx, event, subscription_obj: dict):
        subscription = event.subscription_id
        latest_invoice = _id_of(subscription_obj.get("latest_invoice"))
        period_start, _ = subscription_period(subscription_obj)
        # One occurrence per unpaid invoice (or period): the same episode reported twice counts once.
        if latest_invoice:
            key = f"unpaid:{latest_invoice}"
        elif period_start is not None:
            key = f"unpaid:{int(period_start.timestamp())}"
        else:
            key = f"unpaid:{int(event.created.timestamp())}"
        failure = None
        if latest_invoice:
            failure = (
                ctx.events()
                .filter(object_id=latest_invoice, type=PAYMENT_FAILED, created__lte=event.created)
                .order_by("-created", "-stripe_id")
                .values_list("stripe_id", "amount", "currency")
                .first()
            )
        amount = f" ({money(failure[1], failure[2])})" if failure and failure[1] is not None and failure[2] else ""
        invoice_text = f" invoice {latest_invoice}{amount}" if latest_invoice else " its latest invoice"
        yield Finding(
            fingerprint=f"subscription:{subscription}",
            severity=Severity.HIGH,
            title=f"Subscription {subscription} became unpaid",
            summary=(
                f"Subscription {subscription}"
                f"{f' of customer {event.customer_id}' if event.customer_id else ''} moved to status unpaid: "
                f"Stripe's retries for{invoice_text} ran out. The customer keeps the subscription but new invoices "
                "stay as drafts until it is paid. Contact the customer, or cancel the subscription."
            ),
            occurred_at=event.created,
            occurrence_key=key,
            customer_id=event.customer_id,
            event_ids=tuple(e for e in (failure[0] if failure else None, event.stripe_id) if e),
            metrics={
                "stage": "unpaid",
                "subscription_id": subscription,
                "invoice_id": latest_invoice,
                "amount_due": failure[1] if failure else None,
                "currency": failure[2] if failure else "",
            },
        )

    # --- subscription canceled with its latest invoice unpaid ----------------
    def _latest_outcome(self, ctx, subscription: str, at):
        """The newest payment outcome of the subscription's invoices up to `at`, within the lookback."""
        lookback = timedelta(days=ctx.thresholds["unpaid_lookback_days"])
        # At the same second a payment wins over a failure (it can only come after it).
        rank = Case(
            *(When(type=t, then=Value(2)) for t in PAID_OUTCOMES), default=Value(1), output_field=IntegerField()
        )
        return (
            ctx.events()
            .filter(subscription_id=subscription, type__in=OUTCOME_TYPES, created__gte=at - lookback, created__lte=at)
            .order_by("-created", rank.desc(), "-stripe_id")
            .values_list("pk", "type", "object_id", "stripe_id", "created", "amount", "currency")
            .first()
        )

    def _canceled_unpaid(self, ctx, subscription: str, canceled_at, cancel_event_id: str, customer: str):
        outcome = self._latest_outcome(ctx, subscription, canceled_at)
        if outcome is None:
            return
        pk, kind, invoice_id, failure_event_id, failed_at, total, currency = outcome
        if kind not in UNPAID_OUTCOMES or not invoice_id:
            return  # paid or voided
        reason = ctx.events().filter(pk=pk).values_list("payload__data__object__billing_reason", flat=True)
        if next(iter(reason), None) == "subscription_create":
            return  # an abandoned sign-up, not a subscription that stopped paying
        amount = f" ({money(total, currency)})" if total is not None and currency else ""
        what = "was marked uncollectible" if kind == "invoice.marked_uncollectible" else "failed to pay"
        yield Finding(
            fingerprint=f"subscription:{subscription}",
            severity=Severity.HIGH,
            title=f"Subscription {subscription} canceled with invoice {invoice_id} unpaid{amount}",
            summary=(
                f"Subscription {subscription}{f' of customer {customer}' if customer else ''} was canceled on "
                f"{canceled_at:%Y-%m-%d %H:%M} UTC while its latest invoice {invoice_id}{amount} {what} "
                f"({failed_at:%Y-%m-%d %H:%M} UTC) and had not been paid since. The revenue is lost unless you "
                "collect it: contact the customer, or write the invoice off deliberately."
            ),
            occurred_at=canceled_at,
            occurrence_key=f"canceled:{invoice_id}",
            customer_id=customer,
            event_ids=(failure_event_id, cancel_event_id),
            metrics={
                "stage": "canceled_unpaid",
                "subscription_id": subscription,
                "invoice_id": invoice_id,
                "amount": total,
                "currency": currency or "",
                "failed_at": failed_at.isoformat(),
            },
        )

    def _cancellation_after(self, ctx, event):
        """A failure processed after the cancellation it explains (out-of-order delivery)."""
        subscription = event.subscription_id
        if not subscription:
            return
        lookback = timedelta(days=ctx.thresholds["unpaid_lookback_days"])
        cancel = (
            ctx.events()
            .filter(
                subscription_id=subscription,
                type=SUB_DELETED,
                created__gte=event.created,
                created__lte=event.created + lookback,
            )
            .order_by("created", "stripe_id")
            .values_list("created", "stripe_id", "customer_id", "payload__data__object__status")
            .first()
        )
        if cancel is None or cancel[3] not in ("canceled", None):
            return
        yield from self._canceled_unpaid(ctx, subscription, cancel[0], cancel[1], cancel[2])
