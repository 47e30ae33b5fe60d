"""Builders of the Stripe objects and event envelopes the simulator emits.

The shapes follow API version 2024-06-20 (before basil), modelled on the
stripe-ruby-mock webhook fixtures and stripe/openapi's acacia fixtures: the
invoice carries `charge`, `paid`, `subscription`; the charge carries `invoice`;
the subscription carries `current_period_start/end` and `items.data[].price`.
Ids of related objects are derived from one another (the payment intent of an
invoice, the balance transaction of a charge) so nothing here needs state or
randomness: the same inputs always give the same JSON. Payment-side objects
(charge, refund, dispute, early fraud warning) are in payments.py.
"""

from datetime import datetime

from anomalies.simulation.world import API_VERSION, Customer, Plan, World


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def envelope(event_id: str, event_type: str, created: int, obj: dict, previous: dict | None, livemode: bool) -> dict:
    data = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def customer_object(world: World, customer: Customer) -> dict:
    return {
        "id": customer.id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": ts(customer.created),
        "currency": None,  # set by Stripe once the first subscription exists
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": customer.email,
        "invoice_prefix": customer.invoice_prefix,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": customer.payment_method_id,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": world.livemode,
        "metadata": {},
        "name": customer.name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def price_object(world: World, plan: Plan) -> dict:
    tier = plan.tier
    return {
        "id": f"price_sim_{world.seed}_{tier.name}_{plan.currency}",
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": 1704067200,
        "currency": plan.currency,
        "custom_unit_amount": None,
        "livemode": world.livemode,
        "lookup_key": f"{tier.name}_{plan.currency}",
        "metadata": {},
        "nickname": tier.name.replace("_", " ").title(),
        "product": f"prod_sim_{world.seed}_{tier.name.removesuffix('_annual')}",
        "recurring": {
            "aggregate_usage": None,
            "interval": tier.interval,
            "interval_count": 1,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": tier.unit_amount,
        "unit_amount_decimal": str(tier.unit_amount),
    }


def plan_object(world: World, plan: Plan) -> dict:
    """The legacy `plan` twin of a price, still sent next to it before basil."""
    price = price_object(world, plan)
    return {
        "id": price["id"],
        "object": "plan",
        "active": True,
        "aggregate_usage": None,
        "amount": plan.tier.unit_amount,
        "amount_decimal": str(plan.tier.unit_amount),
        "billing_scheme": "per_unit",
        "created": price["created"],
        "currency": plan.currency,
        "interval": plan.interval,
        "interval_count": 1,
        "livemode": world.livemode,
        "metadata": {},
        "meter": None,
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def subscription_items(world: World, customer: Customer, plan: Plan) -> dict:
    item = {
        "id": customer.item_id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": ts(customer.created),
        "discounts": [],
        "metadata": {},
        "plan": plan_object(world, plan),
        "price": price_object(world, plan),
        "quantity": plan.quantity,
        "subscription": customer.subscription_id,
        "tax_rates": [],
    }
    return {
        "object": "list",
        "data": [item],
        "has_more": False,
        "total_count": 1,
        "url": f"/v1/subscription_items?subscription={customer.subscription_id}",
    }


def subscription_object(world: World, customer: Customer, *, plan: Plan, status: str,
                        period: tuple[datetime, datetime], latest_invoice: str | None,
                        cancel_at: datetime | None = None, canceled_at: datetime | None = None,
                        ended_at: datetime | None = None) -> dict:
    trial_start, trial_end = (customer.signup, customer.anchor) if customer.trial else (None, None)
    return {
        "id": customer.subscription_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None},
        "billing_cycle_anchor": ts(customer.anchor),
        "billing_cycle_anchor_config": None,
        "billing_thresholds": None,
        "cancel_at": ts(cancel_at) if cancel_at else None,
        "cancel_at_period_end": cancel_at is not None and ended_at is None,
        "canceled_at": ts(canceled_at) if canceled_at else None,
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if canceled_at else None,
        },
        "collection_method": "charge_automatically",
        "created": ts(customer.created),
        "currency": plan.currency,
        "current_period_end": ts(period[1]),
        "current_period_start": ts(period[0]),
        "customer": customer.id,
        "days_until_due": None,
        "default_payment_method": customer.payment_method_id,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discount": None,
        "discounts": [],
        "ended_at": ts(ended_at) if ended_at else None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": subscription_items(world, customer, plan),
        "latest_invoice": latest_invoice,
        "livemode": world.livemode,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "plan": plan_object(world, plan),
        "quantity": plan.quantity,
        "schedule": None,
        "start_date": ts(customer.created),
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": ts(trial_end) if trial_end else None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": ts(trial_start) if trial_start else None,
    }


def invoice_line(world: World, customer: Customer, *, invoice_id: str, plan: Plan, amount: int,
                 period: tuple[datetime, datetime], description: str) -> dict:
    return {
        "id": "il_" + invoice_id.removeprefix("in_"),
        "object": "line_item",
        "amount": amount,
        "amount_excluding_tax": amount,
        "currency": plan.currency,
        "description": description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "invoice_item": None,
        "livemode": world.livemode,
        "metadata": {},
        "period": {"end": ts(period[1]), "start": ts(period[0])},
        "plan": plan_object(world, plan),
        "pretax_credit_amounts": [],
        "price": price_object(world, plan),
        "proration": False,
        "proration_details": {"credited_items": None},
        "quantity": plan.quantity,
        "subscription": customer.subscription_id,
        "subscription_item": customer.item_id,
        "tax_amounts": [],
        "tax_rates": [],
        "type": "subscription",
        "unit_amount_excluding_tax": str(plan.tier.unit_amount),
    }


def invoice_object(world: World, customer: Customer, *, invoice_id: str, number: str | None, plan: Plan,
                   period: tuple[datetime, datetime], billing_reason: str, status: str, created: datetime,
                   finalized_at: datetime | None = None, paid_at: datetime | None = None,
                   charge_id: str | None = None, attempt_count: int = 0, next_attempt: datetime | None = None,
                   subtotal: int | None = None, discount: int = 0, previous_start: datetime | None = None) -> dict:
    """A subscription invoice; `subtotal` defaults to the plan amount.

    As Stripe does, the invoice's own period_start/end is the period that just
    ended (from `previous_start` to the new period's start), while the line's
    period is the one being paid for.
    """
    subtotal = plan.amount if subtotal is None else subtotal
    total = subtotal - discount
    due = max(total, 0)
    paid = status == "paid"
    public = f"{world.seed}{invoice_id.rsplit('_', 1)[-1]}"
    line = invoice_line(world, customer, invoice_id=invoice_id, plan=plan, amount=subtotal, period=period,
                        description=_line_description(plan, subtotal))
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "BillingWatch Simulated Co.",
        "account_tax_ids": None,
        "amount_due": due,
        "amount_paid": due if paid else 0,
        "amount_remaining": 0 if paid else due,
        "amount_shipping": 0,
        "application": None,
        "application_fee_amount": None,
        "attempt_count": attempt_count,
        "attempted": attempt_count > 0,
        "auto_advance": not paid,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_reason": billing_reason,
        "charge": charge_id,
        "collection_method": "charge_automatically",
        "created": ts(created),
        "currency": plan.currency,
        "custom_fields": None,
        "customer": customer.id,
        "customer_address": None,
        "customer_email": customer.email,
        "customer_name": customer.name,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discount": None,
        "discounts": [],
        "due_date": None,
        "effective_at": ts(finalized_at) if finalized_at else None,
        "ending_balance": 0 if finalized_at else None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_sim/{public}" if finalized_at else None,
        "invoice_pdf": f"https://pay.stripe.com/invoice/acct_sim/{public}/pdf" if finalized_at else None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": [line],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": world.livemode,
        "metadata": {},
        "next_payment_attempt": ts(next_attempt) if next_attempt else None,
        "number": number if finalized_at else None,
        "on_behalf_of": None,
        "paid": paid,
        "paid_out_of_band": False,
        "payment_intent": ("pi_" + invoice_id.removeprefix("in_")) if due and finalized_at else None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": ts(period[0]),
        "period_start": ts(previous_start or period[0]),
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "quote": None,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": status,
        "status_transitions": {
            "finalized_at": ts(finalized_at) if finalized_at else None,
            "marked_uncollectible_at": None,
            "paid_at": ts(paid_at) if paid_at else None,
            "voided_at": None,
        },
        "subscription": customer.subscription_id,
        "subscription_details": {"metadata": {}},
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal,
        "tax": None,
        "test_clock": None,
        "total": total,
        "total_discount_amounts": [{"amount": discount, "discount": "di_sim_promo"}] if discount else [],
        "total_excluding_tax": total,
        "total_tax_amounts": [],
        "transfer_data": None,
        "webhooks_delivered_at": ts(created),
    }


def _line_description(plan: Plan, amount: int) -> str:
    name = plan.tier.name.replace("_", " ").title()
    if amount == 0:
        return f"Trial period for {name}"
    return f"{plan.quantity} × {name} (at {plan.tier.unit_amount / 100:.2f} {plan.currency.upper()} / {plan.interval})"
