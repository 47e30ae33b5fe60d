"""Turning the schedule's records into event drafts, in the order Stripe sends them.

A renewal is laid out as Stripe does it: at the period start the subscription
moves to the new period (customer.subscription.updated) and a draft invoice is
created; an hour later the invoice is finalized and charged. A failed attempt
makes the subscription past_due until a later attempt succeeds. Times within
one flow are a few seconds apart so the sorted stream keeps their order.
"""

from datetime import datetime, timedelta

from anomalies.simulation.events import (
    customer_object,
    invoice_object,
    plan_object,
    subscription_items,
    subscription_object,
    ts,
)
from anomalies.simulation.payments import (
    charge_object,
    dispute_object,
    early_fraud_warning_object,
    refund_object,
)
from anomalies.simulation.records import Draft, OneOff, PlanChange, Renewal, Schedule, Signup
from anomalies.simulation.world import Customer

SECOND = timedelta(seconds=1)


class Emitter:
    def __init__(self):
        self.drafts: list[Draft] = []

    def __call__(self, at: datetime, event_type: str, obj: dict, previous: dict | None = None,
                 tag: int | None = None) -> None:
        self.drafts.append(Draft(ts(at), event_type, obj, previous, tag))


def render(schedule: Schedule) -> list[Draft]:
    emit = Emitter()
    for signup in schedule.signups:
        render_signup(schedule, signup, emit)
    for renewal in schedule.renewals:
        render_renewal(schedule, renewal, emit)
    for change in schedule.plan_changes:
        render_plan_change(schedule, change, emit)
    for one_off in schedule.one_offs:
        render_one_off(schedule, one_off, emit)
    _render_after_payment(schedule, emit)
    return emit.drafts + schedule.extra


def latest_invoice(schedule: Schedule, customer: Customer, moment: datetime) -> str | None:
    """The subscription's newest invoice at `moment` (None if it predates the window)."""
    found = [(s.at, s.invoice_id) for s in schedule.signups if s.customer is customer and s.at <= moment]
    found += [
        (r.period_start, r.invoice_id) for r in schedule.renewals
        if r.customer is customer and r.billed and not r.canceled and r.period_start <= moment
    ]
    return max(found)[1] if found else None


def render_signup(schedule: Schedule, signup: Signup, emit: Emitter) -> None:
    world, customer, at = schedule.world, signup.customer, signup.at
    plan = customer.plan
    period = customer.period_at(at)
    emit(at, "customer.created", customer_object(world, customer))
    status = "trialing" if customer.trial else "active"
    subscription = subscription_object(world, customer, plan=plan, status=status, period=period,
                                       latest_invoice=signup.invoice_id)
    emit(at + 2 * SECOND, "customer.subscription.created", subscription)
    invoice = dict(invoice_id=signup.invoice_id, number=f"{customer.invoice_prefix}-0001", plan=plan,
                   period=period, billing_reason="subscription_create", created=at,
                   subtotal=0 if customer.trial else None)
    emit(at + 3 * SECOND, "invoice.created", invoice_object(world, customer, status="draft", **invoice))
    finalized = at + 4 * SECOND
    emit(finalized, "invoice.finalized", invoice_object(world, customer, status="open", finalized_at=finalized,
                                                       **invoice))
    paid_at = at + 6 * SECOND
    if signup.charge_id:
        emit(at + 5 * SECOND, "charge.succeeded", charge_object(
            world, customer, charge_id=signup.charge_id, amount=plan.amount, currency=plan.currency,
            created=at + 5 * SECOND, invoice_id=signup.invoice_id,
            payment_intent="pi_" + signup.invoice_id.removeprefix("in_"), description="Subscription creation"))
    paid = invoice_object(world, customer, status="paid", finalized_at=finalized, paid_at=paid_at,
                          charge_id=signup.charge_id, attempt_count=1 if signup.charge_id else 0, **invoice)
    emit(paid_at, "invoice.paid", paid)
    emit(paid_at + SECOND, "invoice.payment_succeeded", paid)


def render_renewal(schedule: Schedule, renewal: Renewal, emit: Emitter) -> None:
    world, customer, tag = schedule.world, renewal.customer, renewal.tag
    if renewal.canceled:
        _render_cancellation(schedule, renewal, emit)
        return
    period = (renewal.period_start, renewal.period_end)
    before = latest_invoice(schedule, customer, renewal.period_start - SECOND)

    def subscription(status: str) -> dict:
        return subscription_object(world, customer, plan=renewal.plan, status=status, period=period,
                                   latest_invoice=renewal.invoice_id if renewal.billed else before)

    if renewal.announces_period:
        previous = {"current_period_end": ts(renewal.period_start), "current_period_start": ts(renewal.previous_start)}
        if renewal.billed:
            previous["latest_invoice"] = before
        if renewal.from_trial:
            previous["status"] = "trialing"
        emit(renewal.period_start, "customer.subscription.updated", subscription("active"), previous, tag)
    if not renewal.billed:
        return
    invoice = dict(invoice_id=renewal.invoice_id, number=renewal.number, plan=renewal.plan, period=period,
                   billing_reason="subscription_cycle", created=renewal.created_at,
                   previous_start=renewal.previous_start)
    emit(renewal.created_at + SECOND, "invoice.created", invoice_object(world, customer, status="draft", **invoice),
         tag=tag)
    finalized = renewal.finalized_at
    emit(finalized, "invoice.finalized", invoice_object(world, customer, status="open", finalized_at=finalized,
                                                       **invoice), tag=tag)
    past_due = False
    for count, attempt in enumerate(renewal.attempts, start=1):
        at = attempt.at
        charge = charge_object(world, customer, charge_id=attempt.charge_id, amount=renewal.amount,
                               currency=renewal.currency, created=at, invoice_id=renewal.invoice_id,
                               payment_intent=renewal.payment_intent, failure_code=attempt.failure_code)
        if attempt.succeeded:
            emit(at, "charge.succeeded", charge, tag=tag)
            paid = invoice_object(world, customer, status="paid", finalized_at=finalized, paid_at=at + 2 * SECOND,
                                  charge_id=attempt.charge_id, attempt_count=count, **invoice)
            emit(at + 2 * SECOND, "invoice.paid", paid, tag=tag)
            emit(at + 3 * SECOND, "invoice.payment_succeeded", paid, tag=tag)
            if past_due:
                emit(at + 4 * SECOND, "customer.subscription.updated", subscription("active"),
                     {"status": "past_due"}, tag)
            return
        emit(at, "charge.failed", charge, tag=tag)
        failed = invoice_object(world, customer, status="open", finalized_at=finalized, charge_id=attempt.charge_id,
                                attempt_count=count, next_attempt=attempt.next_attempt, **invoice)
        emit(at + 2 * SECOND, "invoice.payment_failed", failed, tag=tag)
        if not past_due:
            emit(at + 4 * SECOND, "customer.subscription.updated", subscription("past_due"), {"status": "active"}, tag)
            past_due = True
        if attempt.next_attempt is None and renewal.ends_unpaid:
            emit(at + 5 * SECOND, "customer.subscription.updated", subscription("unpaid"), {"status": "past_due"}, tag)


def _render_cancellation(schedule: Schedule, renewal: Renewal, emit: Emitter) -> None:
    """cancel_at_period_end is set some days before; the subscription ends at the period end."""
    world, customer = schedule.world, renewal.customer
    period = (renewal.previous_start, renewal.period_start)
    requested = renewal.cancel_requested_at
    latest = latest_invoice(schedule, customer, renewal.period_start - SECOND)
    common = dict(plan=renewal.plan, period=period, latest_invoice=latest, cancel_at=renewal.period_start,
                  canceled_at=requested)
    if requested is not None and requested > world.start:
        previous = {"cancel_at": None, "cancel_at_period_end": False, "canceled_at": None,
                    "cancellation_details": {"comment": None, "feedback": None, "reason": None}}
        emit(requested, "customer.subscription.updated",
             subscription_object(world, customer, status="active", **common), previous, renewal.tag)
    emit(renewal.period_start, "customer.subscription.deleted",
         subscription_object(world, customer, status="canceled", ended_at=renewal.period_start, **common),
         tag=renewal.tag)


def render_plan_change(schedule: Schedule, change: PlanChange, emit: Emitter) -> None:
    world, customer = schedule.world, change.customer
    subscription = subscription_object(world, customer, plan=change.new, status="active",
                                       period=customer.period_at(change.at),
                                       latest_invoice=latest_invoice(schedule, customer, change.at))
    previous = {"items": subscription_items(world, customer, change.old)}
    if change.old.tier != change.new.tier:
        previous["plan"] = plan_object(world, change.old)
    if change.old.quantity != change.new.quantity:
        previous["quantity"] = change.old.quantity
    emit(change.at, "customer.subscription.updated", subscription, previous, change.tag)


def render_one_off(schedule: Schedule, one_off: OneOff, emit: Emitter) -> None:
    charge = charge_object(schedule.world, one_off.customer, charge_id=one_off.charge_id, amount=one_off.amount,
                           currency=one_off.currency, created=one_off.at, invoice_id=None,
                           payment_intent="pi_" + one_off.charge_id.removeprefix("ch_"),
                           failure_code=one_off.failure_code, card=one_off.card, description=one_off.description)
    emit(one_off.at, "charge.succeeded" if one_off.succeeded else "charge.failed", charge, tag=one_off.tag)


def _render_after_payment(schedule: Schedule, emit: Emitter) -> None:
    world = schedule.world
    for refund in schedule.refunds:
        charge = refund.charge
        refund_json = refund_object(world, refund_id=refund.id, charge_id=charge.id, amount=refund.amount,
                                    currency=charge.currency, created=refund.at, payment_intent=charge.payment_intent)
        obj = charge_object(world, charge.customer, charge_id=charge.id, amount=charge.amount, currency=charge.currency,
                            created=charge.at, invoice_id=charge.invoice_id, payment_intent=charge.payment_intent,
                            refunds=[refund_json])
        emit(refund.at, "charge.refunded", obj, {"amount_refunded": 0, "refunded": False}, refund.tag)
    for dispute in schedule.disputes:
        charge = dispute.charge
        obj = dispute_object(world, dispute_id=dispute.id, charge_id=charge.id, amount=charge.amount,
                             currency=charge.currency, created=dispute.at, payment_intent=charge.payment_intent,
                             reason=dispute.reason, brand=charge.customer.card.brand)
        emit(dispute.at, "charge.dispute.created", obj, tag=dispute.tag)
    for warning in schedule.fraud_warnings:
        obj = early_fraud_warning_object(world, warning_id=warning.id, charge_id=warning.charge.id,
                                         created=warning.at, payment_intent=warning.charge.payment_intent,
                                         fraud_type=warning.fraud_type)
        emit(warning.at, "radar.early_fraud_warning.created", obj, tag=warning.tag)
