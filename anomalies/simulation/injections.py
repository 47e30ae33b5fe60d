"""Injected anomalies: one function per detector, each unmistakable for that detector.

An injection works on the schedule before it is rendered, so it can add events
(a burst of failed charges) or change normal ones (a renewal whose payment
never succeeds) and every event of the affected flow stays consistent. Each
returns its label (see stream.py for the format) and tags the records it
created or changed, so the label can list their event ids. Injections pick
records no other injection has tagged, and the revenue guard keeps their side
effects (a renewal not paid) from looking like a revenue drop.

webhook_lag and webhook_silence are about webhook delivery (`received_at`,
gaps between deliveries). Files are imported, and imports never count for
lag, so those two cannot be injected: asking for them is an error.
"""

import math
from collections.abc import Callable
from datetime import datetime, timedelta

from anomalies.simulation.context import (
    LIVE_ONLY,
    Injection,
    SimulationError,
    active_customers,
    renewal_near,
)
from anomalies.simulation.events import customer_object, invoice_object
from anomalies.simulation.records import Attempt, Dispute, OneOff, PlanChange, Refund, Renewal, Schedule
from anomalies.simulation.render import Emitter
from anomalies.simulation.schedule import ONE_OFF_AMOUNTS, record_plan_change, stop_billing_after
from anomalies.simulation.world import DAY, HOUR, MONTHLY_TIERS, Customer, Plan, random_card

__all__ = ["INJECTIONS", "LIVE_ONLY", "Injection", "SimulationError", "near_seats_renewal"]


def charge_failure_spike(inj: Injection) -> dict:
    """25 failed charges of 25 different customers inside one clock hour, 135 s apart."""
    first = inj.day + timedelta(hours=inj.rng.randint(10, 16), minutes=2)
    customers = active_customers(inj, first)
    if len(customers) < 25:
        raise SimulationError("charge_failure_spike needs at least 25 active customers; use more --customers")
    chosen = inj.rng.sample(customers, 25)
    times = [first + timedelta(seconds=135 * i) for i in range(25)]
    for customer, at in zip(chosen, times, strict=True):
        code = inj.rng.choice(("processing_error", "card_declined", "card_declined", "insufficient_funds"))
        inj.schedule.one_offs.append(OneOff(customer, at, inj.rng.choice(ONE_OFF_AMOUNTS), customer.currency,
                                            inj.world.ids.next("ch"), failure_code=code, tag=inj.tag))
    return inj.label(times[4], None, (times[0], times[-1]))


def card_testing(inj: Injection) -> dict:
    """A brand-new customer tries 8 different cards for 100 in under 5 minutes, all declined."""
    first = inj.day + timedelta(hours=inj.rng.randint(1, 5), minutes=inj.rng.randrange(50))
    customer = inj.new_customer(Plan(MONTHLY_TIERS[0], "usd"), first - timedelta(minutes=3))
    emit = Emitter()
    emit(customer.created, "customer.created", customer_object(inj.world, customer), tag=inj.tag)
    inj.schedule.extra.extend(emit.drafts)
    times = [first + timedelta(seconds=35 * i) for i in range(8)]
    for i, at in enumerate(times):
        code = ("card_declined", "incorrect_cvc", "expired_card", "card_declined")[i % 4]
        card = random_card(inj.rng, "usd", at.year)
        inj.schedule.one_offs.append(OneOff(customer, at, 100, "usd", inj.world.ids.next("ch"), failure_code=code,
                                            card=card, tag=inj.tag))
    return inj.label(times[4], customer, (times[0], times[-1]), may_also_fire=("charge_failure_spike",))


def duplicate_charge(inj: Injection) -> dict:
    """The renewal charge goes through twice: a second identical charge 40 s later."""
    guard = inj.schedule.guard
    # The second charge is revenue nobody expected that day: a small usd one on a day free to take it.
    renewal = renewal_near(inj, lambda r: True,
                           free=lambda r: guard.can_gain(r.currency, r.period_start.date(), r.amount),
                           prefer=lambda r: (r.currency != "usd", r.amount))
    renewal.tag = inj.tag
    guard.gain(renewal.currency, renewal.period_start.date(), renewal.amount)
    at = renewal.paid_at + timedelta(seconds=40)
    duplicate = OneOff(renewal.customer, at, renewal.amount, renewal.currency, inj.world.ids.next("ch"),
                       description="Subscription update", tag=inj.tag)
    inj.schedule.one_offs.append(duplicate)
    return inj.label(at, renewal.customer, (renewal.paid_at, at), invoice_id=renewal.invoice_id,
                     charge_id=duplicate.charge_id)


def fraud_spike(inj: Injection) -> dict:
    """6 disputes within 10 hours, on charges of 6 different customers from the last 20 days."""
    first = inj.at_hour(7, 10)
    taken = inj.schedule.referenced_charge_ids()
    by_customer = {}
    for charge in inj.schedule.successful_charges():
        if first - 20 * DAY <= charge.at <= first - DAY and not charge.customer.reserved and charge.id not in taken:
            by_customer[charge.customer.number] = charge  # the customer's latest charge
    if len(by_customer) < 6:
        raise SimulationError("fraud_spike needs 6 customers with recent charges; use more --customers")
    charges = inj.rng.sample(sorted(by_customer.values(), key=lambda c: c.id), 6)
    times = [first + 2 * HOUR * i for i in range(6)]
    for charge, at in zip(charges, times, strict=True):
        inj.schedule.disputes.append(Dispute(charge, at, inj.world.ids.next("dp"), "fraudulent", inj.tag))
    return inj.label(_dispute_rule_crossed(inj.schedule, times), None, (times[0], times[-1]))


def _dispute_rule_crossed(schedule: Schedule, times: list[datetime]) -> datetime:
    """The first injected dispute at which a fraud_spike rule holds: >=3 disputes in 30 days making
    >=0.75% of the successful charges of those 30 days, or >=5 disputes in 24 hours."""
    charges = [c.at for c in schedule.successful_charges()]
    disputes = sorted(d.at for d in schedule.disputes)
    for i, at in enumerate(times):
        month = [d for d in disputes if at - 30 * DAY < d <= at]
        paid = [c for c in charges if at - 30 * DAY < c <= at]
        if len(month) >= 3 and len(month) >= 0.0075 * len(paid) or i >= 4:
            return at
    return times[4]


def negative_invoice(inj: Injection) -> dict:
    """A promotion larger than the price: an invoice finalized (and paid, as $0 is) at total -1500."""
    at = inj.at_hour(11, 15)
    customers = [
        c for c in active_customers(inj, at)
        if c.plan.interval == "month" and all(abs(r.period_start - at) > 2 * DAY
                                              for r in inj.schedule.renewals_of(c))
    ]
    if not customers:
        raise SimulationError("negative_invoice: no customer to invoice; use more --customers")
    customer = inj.rng.choice(customers)
    plan = inj.schedule.plan_at(customer, at)
    invoice_id, world = inj.world.ids.next("in"), inj.world
    invoice = dict(invoice_id=invoice_id, number=f"{customer.invoice_prefix}-0900", plan=plan,
                   period=customer.period_at(at), billing_reason="subscription_update", created=at,
                   discount=plan.amount + 1500)
    finalized = at + timedelta(seconds=60)
    emit = Emitter()
    emit(at, "invoice.created", invoice_object(world, customer, status="draft", **invoice), tag=inj.tag)
    emit(finalized, "invoice.finalized", invoice_object(world, customer, status="open", finalized_at=finalized,
                                                       **invoice), tag=inj.tag)
    paid = invoice_object(world, customer, status="paid", finalized_at=finalized, paid_at=finalized, **invoice)
    emit(finalized + timedelta(seconds=1), "invoice.paid", paid, tag=inj.tag)
    inj.schedule.extra.extend(emit.drafts)
    return inj.label(finalized, customer, subscription_id=customer.subscription_id, invoice_id=invoice_id)


def refund_spike(inj: Injection) -> dict:
    """75,000 refunded at once on the 99,000 yearly renewal of the annual customer."""
    annual = inj.world.by_role("annual")
    at = inj.at_hour(10, 16)
    charges = [c for c in inj.schedule.successful_charges() if c.customer is annual and c.at < at - DAY]
    if not charges:
        raise SimulationError("refund_spike: the yearly renewal is not in the window; use --days 10 or more")
    charge = charges[-1]
    inj.schedule.refunds.append(Refund(charge, at, 75_000, inj.world.ids.next("re"), inj.tag))
    return inj.label(at, annual, subscription_id=annual.subscription_id, invoice_id=charge.invoice_id,
                     charge_id=charge.id)


def revenue_drop(inj: Injection) -> dict:
    """On a weekday no usd one-off sale goes through and >=60% of usd renewals are collected
    only the next night (a payment outage): the usd day falls far below what was due."""
    day, schedule = inj.day.date(), inj.schedule
    if schedule.guard.expected("usd", day) < 10_000:
        raise SimulationError("revenue_drop needs a usd day expected to bring at least 10,000 (the detector's "
                              "minimum); use more --customers (60 or more)")
    due = [r for r in schedule.renewals
           if r.currency == "usd" and r.period_start.date() == day and r.billed and not r.canceled and r.tag is None
           and r.paid_at is not None]
    late = sorted(due, key=lambda r: (-r.amount, r.invoice_id))[: math.ceil(0.6 * len(due))]
    catch_up = inj.day + DAY + timedelta(minutes=20)
    schedule.guard.gain("usd", catch_up.date(), sum(r.amount for r in late))
    for i, renewal in enumerate(late):
        success = next(a for a in renewal.attempts if a.succeeded)
        renewal.attempts = [Attempt(catch_up + timedelta(minutes=7 * i), success.charge_id)]
        renewal.tag = inj.tag
    referenced = schedule.referenced_charge_ids()
    kept = []
    for one_off in schedule.one_offs:
        if one_off.currency == "usd" and one_off.at.date() == day and one_off.succeeded and one_off.tag is None:
            if one_off.charge_id not in referenced:
                continue  # this sale never happened
            one_off.at += DAY  # a refund or dispute names it: the sale is made the day after
        kept.append(one_off)
    schedule.one_offs = kept
    end_of_day = inj.day + DAY - timedelta(seconds=1)
    return inj.label(end_of_day, None, (inj.day, end_of_day), currency="usd")


def silent_lapse(inj: Injection) -> dict:
    """A monthly subscription renews (period advanced, still active) but is never invoiced or
    charged again. The clock starts at that period start: the lapse is due one interval plus the
    3-day grace later, which must fall inside the window (so the window needs 36+ days)."""
    schedule, guard, world = inj.schedule, inj.schedule.guard, inj.world
    referenced = schedule.referenced_charge_ids()
    options = []
    for renewal in schedule.renewals:
        deadline = renewal.period_end + 3 * DAY
        if (renewal.customer.reserved or renewal.tag is not None or renewal.canceled or not renewal.billed
                or renewal.plan.interval != "month" or deadline + 12 * HOUR > world.end
                or deadline < inj.earliest() or any(a.charge_id in referenced for a in renewal.attempts)
                or _changes_plan_after(schedule, renewal)):
            continue
        safe = guard.can_lose(renewal.currency, renewal.period_start.date(), renewal.amount)
        options.append(((not safe, abs(deadline - inj.day - 12 * HOUR), renewal.invoice_id), renewal))
    if not options:
        days = (world.end - world.start).days
        raise SimulationError(f"silent_lapse needs a longer window (got {days} days; 38 or more fit): a renewal, "
                              "then a whole interval and the 3-day grace must pass before the end")
    _, renewal = min(options, key=lambda option: option[0])
    renewal.billed, renewal.tag = False, inj.tag
    stop_billing_after(schedule, renewal)
    guard.lose(renewal.currency, renewal.period_start.date(), renewal.amount)
    at = renewal.period_end + 3 * DAY  # one interval (Stripe's calendar month) plus the grace
    customer = renewal.customer
    return inj.label(at, customer, (renewal.period_start, at), subscription_id=customer.subscription_id)


def _changes_plan_after(schedule: Schedule, renewal: Renewal) -> bool:
    """A later plan change would send the subscription's events on after it stopped paying."""
    return any(c.customer is renewal.customer and c.at > renewal.period_start for c in schedule.plan_changes)


def dunning_failure(inj: Injection) -> dict:
    """A renewal fails 4 times over 6 days; the last attempt is final and the subscription goes unpaid."""
    guard = inj.schedule.guard
    target = inj.day - 6 * DAY
    renewal = _renewal_near_start(inj, target, lambda r: guard.can_lose(r.currency, r.period_start.date(), r.amount))
    first = renewal.attempts[0].at
    times = [first + 2 * DAY * i for i in range(4)]
    codes = ("insufficient_funds", "insufficient_funds", "card_declined", "card_declined")
    renewal.attempts = [
        Attempt(at, inj.world.ids.next("ch"), failure_code=code, next_attempt=times[i + 1] if i < 3 else None)
        for i, (at, code) in enumerate(zip(times, codes, strict=True))
    ]
    renewal.ends_unpaid, renewal.tag = True, inj.tag
    guard.lose(renewal.currency, renewal.period_start.date(), renewal.amount)
    stop_billing_after(inj.schedule, renewal)
    at = times[-1] + timedelta(seconds=2)  # the final invoice.payment_failed
    return inj.label(at, renewal.customer, (times[0], at + timedelta(seconds=3)),
                     subscription_id=renewal.customer.subscription_id, invoice_id=renewal.invoice_id)


def _renewal_near_start(inj: Injection, target: datetime, safe: Callable[[Renewal], bool]) -> Renewal:
    referenced = inj.schedule.referenced_charge_ids()
    candidates = [
        r for r in inj.schedule.renewals
        if r.tag is None and not r.customer.reserved and r.collected and len(r.attempts) == 1
        and r.plan.interval == "month" and r.attempts[0].charge_id not in referenced
        and r.period_start > inj.world.start + HOUR and r.period_start + 6 * DAY >= inj.earliest()
        and r.period_start + 6 * DAY + 2 * HOUR < inj.world.end and not _changes_plan_after(inj.schedule, r)
    ]
    if not candidates:
        raise SimulationError(f"{inj.name}: no renewal to let fail; use more --customers or --days")
    return min(candidates, key=lambda r: (not safe(r), abs(r.period_start - target), r.invoice_id))


def currency_mismatch(inj: Injection) -> dict:
    """A usd customer with at least 3 usd payments is suddenly charged in gbp."""
    schedule = inj.schedule
    at = inj.at_hour(12, 18)
    customers = [c for c in active_customers(inj, at) if c.currency == "usd" and schedule.is_free(c, at)]
    if not customers:
        raise SimulationError("currency_mismatch: no usd customer; use more --customers")

    def paid_before(customer: Customer) -> int:
        return sum(1 for c in schedule.successful_charges() if c.customer is customer and c.at < at)

    customer = max(customers, key=lambda c: (paid_before(c), -c.number))
    moment = schedule.world.start + DAY + 10 * HOUR
    while paid_before(customer) < 3 and moment < at - DAY:
        amount = inj.rng.choice(ONE_OFF_AMOUNTS)
        if schedule.is_free(customer, moment) and schedule.guard.can_gain("usd", moment.date(), amount):
            schedule.guard.gain("usd", moment.date(), amount)
            schedule.one_offs.append(OneOff(customer, moment, amount, "usd", inj.world.ids.next("ch"), tag=inj.tag))
        moment += DAY + HOUR
    if paid_before(customer) < 3:
        raise SimulationError("currency_mismatch: the window is too short for 3 usd payments first")
    charge = OneOff(customer, at, 4900, "gbp", inj.world.ids.next("ch"), tag=inj.tag)
    schedule.one_offs.append(charge)
    return inj.label(at, customer, charge_id=charge.charge_id, currency="gbp")


def plan_downgrade(inj: Injection) -> dict:
    """The 20-seat customer (20 × 4900) drops to 2 seats: 88,200 a month lost."""
    seats = inj.world.by_role("seats")
    at = inj.at_hour(10, 16)
    old = inj.schedule.plan_at(seats, at)
    record_plan_change(inj.schedule, PlanChange(seats, at, old, old.with_quantity(2), inj.tag))
    return inj.label(at, seats, subscription_id=seats.subscription_id)


def near_seats_renewal(schedule: Schedule, day: datetime) -> bool:
    seats = schedule.world.by_role("seats")
    return any(abs(r.period_start - day - 12 * HOUR) < 2 * DAY for r in schedule.renewals_of(seats))


def double_invoice(inj: Injection) -> dict:
    """The same billing cycle invoiced (and charged) a second time, 3 hours after the first."""
    # Not a trial's end: a detector rightly forgives a schedule reset by a status change.
    renewal = renewal_near(inj, lambda r: r.plan.interval == "month" and not r.from_trial)
    renewal.tag = inj.tag
    ids = inj.world.ids
    number = f"{renewal.number[:-4]}{int(renewal.number[-4:]) + 1:04d}"
    twin = Renewal(renewal.customer, renewal.period_start, renewal.period_end, renewal.previous_start, renewal.plan,
                   False, ids.next("in"), number, announces_period=False, offset=3 * HOUR, tag=inj.tag)
    twin.attempts = [Attempt(twin.finalized_at + timedelta(seconds=5), ids.next("ch"))]
    inj.schedule.renewals.append(twin)
    # The second invoice exists from its creation (its `created`), an hour before it is finalized.
    return inj.label(twin.created_at, renewal.customer, (renewal.created_at, twin.finalized_at),
                     subscription_id=renewal.customer.subscription_id, invoice_id=twin.invoice_id)


INJECTIONS: dict[str, Callable[[Injection], dict]] = {
    "charge_failure_spike": charge_failure_spike,
    "card_testing": card_testing,
    "duplicate_charge": duplicate_charge,
    "fraud_spike": fraud_spike,
    "negative_invoice": negative_invoice,
    "refund_spike": refund_spike,
    "revenue_drop": revenue_drop,
    "silent_lapse": silent_lapse,
    "dunning_failure": dunning_failure,
    "currency_mismatch": currency_mismatch,
    "plan_downgrade": plan_downgrade,
    "double_invoice": double_invoice,
}
