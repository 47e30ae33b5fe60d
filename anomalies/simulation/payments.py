"""Builders of the payment-side Stripe objects: charges, refunds, disputes, fraud warnings.

Same conventions as events.py (API 2024-06-20 shapes, ids derived from one
another, no randomness). Detectors find a card's fingerprint at
`payment_method_details.card.fingerprint`; a dispute and an early fraud warning
name no customer, only the charge.
"""

from datetime import datetime

from anomalies.simulation.events import ts
from anomalies.simulation.world import Card, Customer, World

_DECLINES = {
    "card_declined": ("generic_decline", "Your card was declined."),
    "insufficient_funds": ("insufficient_funds", "Your card has insufficient funds."),
    "expired_card": ("expired_card", "Your card has expired."),
    "incorrect_cvc": ("incorrect_cvc", "Your card's security code is incorrect."),
    "processing_error": ("processing_error", "An error occurred while processing your card. Try again."),
}


def charge_object(world: World, customer: Customer, *, charge_id: str, amount: int, currency: str,
                  created: datetime, invoice_id: str | None, payment_intent: str, failure_code: str | None = None,
                  card: Card | None = None, description: str | None = None, refunds: list[dict] = ()) -> dict:
    card = card or customer.card
    refunded = sum(r["amount"] for r in refunds)
    succeeded = failure_code is None
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if succeeded else 0,
        "amount_refunded": refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": ("txn_" + charge_id.removeprefix("ch_")) if succeeded else None,
        "billing_details": {
            "address": {"city": None, "country": card.country, "line1": None, "line2": None,
                        "postal_code": None, "state": None},
            "email": customer.email,
            "name": customer.name,
            "phone": None,
        },
        "calculated_statement_descriptor": "BILLINGWATCH SIM",
        "captured": succeeded,
        "created": ts(created),
        "currency": currency,
        "customer": customer.id,
        "description": description or ("Subscription update" if invoice_id else "One-time purchase"),
        "destination": None,
        "dispute": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": failure_code,
        "failure_message": _DECLINES[failure_code][1] if failure_code else None,
        "fraud_details": {},
        "invoice": invoice_id,
        "livemode": world.livemode,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": _outcome(charge_id, failure_code),
        "paid": succeeded,
        "payment_intent": payment_intent,
        "payment_method": customer.payment_method_id if card is customer.card else "pm_" + card.fingerprint,
        "payment_method_details": {"card": _card_details(card, amount if succeeded else None), "type": "card"},
        "radar_options": {},
        "receipt_email": customer.email if succeeded else None,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/acct_sim/{charge_id}" if succeeded else None,
        "refunded": bool(refunds) and refunded >= amount,
        "refunds": {
            "object": "list",
            "data": list(refunds),
            "has_more": False,
            "total_count": len(refunds),
            "url": f"/v1/charges/{charge_id}/refunds",
        },
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded" if succeeded else "failed",
        "transfer_data": None,
        "transfer_group": None,
    }


def _outcome(charge_id: str, failure_code: str | None) -> dict:
    risk_score = sum(map(ord, charge_id)) % 40 + 5  # stable per charge, always "normal" risk
    if failure_code is None:
        return {"network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                "risk_score": risk_score, "seller_message": "Payment complete.", "type": "authorized"}
    reason = _DECLINES[failure_code][0]
    return {"network_status": "declined_by_network", "reason": reason, "risk_level": "normal",
            "risk_score": risk_score, "seller_message": "The bank did not return any further details with this "
            "decline.", "type": "issuer_declined"}


def _card_details(card: Card, authorized: int | None) -> dict:
    return {
        "amount_authorized": authorized,
        "brand": card.brand,
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "country": card.country,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "extended_authorization": {"status": "disabled"},
        "fingerprint": card.fingerprint,
        "funding": "credit",
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": card.last4,
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": card.brand,
        "network_token": {"used": False},
        "overcapture": {"maximum_amount_capturable": authorized or 0, "status": "unavailable"},
        "three_d_secure": None,
        "wallet": None,
    }


def refund_object(world: World, *, refund_id: str, charge_id: str, amount: int, currency: str,
                  created: datetime, payment_intent: str) -> dict:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": "txn_" + refund_id.removeprefix("re_"),
        "charge": charge_id,
        "created": ts(created),
        "currency": currency,
        "destination_details": {"card": {"reference_status": "pending", "reference_type": "acquirer_reference_number",
                                         "type": "refund"}, "type": "card"},
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": "requested_by_customer",
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def dispute_object(world: World, *, dispute_id: str, charge_id: str, amount: int, currency: str,
                   created: datetime, payment_intent: str, reason: str, brand: str) -> dict:
    evidence_fields = (
        "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
        "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
        "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation",
        "duplicate_charge_explanation", "duplicate_charge_id", "product_description", "receipt", "refund_policy",
        "refund_policy_disclosure", "refund_refusal_explanation", "service_date", "service_documentation",
        "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation",
        "shipping_tracking_number", "uncategorized_file", "uncategorized_text",
    )
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "balance_transaction": None,
        "balance_transactions": [],
        "charge": charge_id,  # a dispute names no customer: join on the charge
        "created": ts(created),
        "currency": currency,
        "evidence": dict.fromkeys(evidence_fields),
        "evidence_details": {"due_by": ts(created) + 21 * 86400, "has_evidence": False, "past_due": False,
                             "submission_count": 0},
        "is_charge_refundable": False,
        "livemode": world.livemode,
        "metadata": {},
        "payment_intent": payment_intent,
        "payment_method_details": {"card": {"brand": brand, "case_type": "chargeback",
                                            "network_reason_code": "10.4"}, "type": "card"},
        "reason": reason,
        "status": "needs_response",
    }


def early_fraud_warning_object(world: World, *, warning_id: str, charge_id: str, created: datetime,
                               payment_intent: str, fraud_type: str) -> dict:
    return {
        "id": warning_id,
        "object": "radar.early_fraud_warning",
        "actionable": True,
        "charge": charge_id,
        "created": ts(created),
        "fraud_type": fraud_type,
        "livemode": world.livemode,
        "payment_intent": payment_intent,
    }
