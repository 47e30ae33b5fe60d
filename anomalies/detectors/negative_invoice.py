"""negative_invoice: an invoice finalized or paid with a total below zero.

Stripe lets an invoice total go negative when credits (a proration credit
larger than the new charges, a credit note line, an amount-off coupon applied
to the wrong item) exceed what is billed. The customer is not refunded: the
negative amount lands on the customer's credit balance and silently eats
future invoices, so it is almost always a pricing or proration mistake worth
a look. Only invoices that were finalized or paid count (a draft can still be
edited). The total is the invoice's `total`, the same field in every API
version (stored in the `amount` column). One invoice is one anomaly and one
occurrence, however many of its events (finalized, paid, payment_succeeded)
arrive, in whatever order.
"""

from anomalies.detectors.base import Detector, DetectorContext, Finding
from anomalies.models import Severity
from anomalies.registry import register
from anomalies.text import money

INVOICE_TYPES = ("invoice.finalized", "invoice.paid", "invoice.payment_succeeded")
_VERB = {"invoice.finalized": "finalized", "invoice.paid": "paid", "invoice.payment_succeeded": "paid"}


@register
class NegativeInvoice(Detector):
    name = "negative_invoice"
    title = "Negative invoice"
    description = (
        "An invoice was finalized or paid with a total below zero: credits exceeded the charges, and the "
        "difference went to the customer's credit balance. Usually a proration or coupon mistake."
    )
    event_types = frozenset(INVOICE_TYPES)
    thresholds = ()

    def evaluate(self, ctx: DetectorContext, event):
        if event.amount is None or event.amount >= 0 or not event.currency or not event.object_id:
            return
        # Every finalized/paid event of this invoice, so the evidence and the
        # time of the anomaly are the same whichever of them is processed first.
        rows = sorted(
            ctx.events()
            .filter(object_id=event.object_id, type__in=INVOICE_TYPES)
            .values_list("created", "type", "stripe_id", "amount", "currency")
        )
        negative = [row for row in rows if row[3] is not None and row[3] < 0 and row[4] == event.currency]
        if not negative:  # only possible if the row changed under us; this event is the evidence
            negative = [(event.created, event.type, event.stripe_id, event.amount, event.currency)]
        first_at = negative[0][0]
        total = negative[-1][3]  # the latest word on the invoice total
        verbs = sorted({_VERB[row[1]] for row in negative}, key=["finalized", "paid"].index)
        invoice_id = event.object_id
        customer = event.customer_id
        subscription = event.subscription_id
        whose = f" for customer {customer}" if customer else ""
        of_sub = f" (subscription {subscription})" if subscription else ""
        yield Finding(
            fingerprint=invoice_id,
            severity=Severity.MEDIUM,
            title=f"Invoice {invoice_id} {verbs[0]} with a negative total of {money(total, event.currency)}",
            summary=(
                f"Invoice {invoice_id}{whose}{of_sub} was {' and '.join(verbs)} with a total of "
                f"{money(total, event.currency)}. A negative total is not refunded: it is added to the "
                "customer's credit balance and reduces their next invoices. Check the invoice's credit, "
                "proration and coupon lines, and correct the customer's balance if the credit was not intended."
            ),
            occurred_at=first_at,
            occurrence_key=invoice_id,
            customer_id=customer,
            event_ids=tuple(row[2] for row in negative),
            metrics={
                "invoice_id": invoice_id,
                "total": total,
                "currency": event.currency,
                "subscription_id": subscription,
                "event_types": [row[1] for row in negative],
            },
        )
