"""Normal traffic: what an ordinary month of a subscription business looks like.

Every rate and spacing below is chosen to stay clearly inside the detectors'
default thresholds (see the module constants), because the benchmark built on
this stream demands zero false positives on normal traffic:

- about 5% of renewals fail once (at most one failure a day, so never 5 in an
  hour or 2 for a customer), each paid by a retry 22-44 h later, well inside
  silent_lapse's 3-day grace;
- a few one-off sales a day per currency (customers / 25 on weekdays, 40% of
  that at weekends), 500-1,000 each, never two for a customer within 2 hours;
- every sign-up starts with a 14-day trial, so its first payment is a renewal;
- one dispute and one early fraud warning per 30 days, 30 days apart (never 3
  in any 30-day window);
- a refund every 3 days, of at most 1,000, never 3 in a currency within 7 days;
- downgrades 10 days apart, each losing at most 10,000/month;
- renewals, failures, cancellations and refunds booked against a revenue guard
  (see guard.py) so no currency-day falls 12% short of what was due.
"""

from collections import defaultdict
from datetime import datetime, timedelta
from random import Random

from anomalies.simulation.guard import RevenueGuard
from anomalies.simulation.records import (
    CHARGE_AFTER,
    Attempt,
    ChargeRef,
    Dispute,
    FraudWarning,
    OneOff,
    PlanChange,
    Refund,
    Renewal,
    Schedule,
    Signup,
)
from anomalies.simulation.world import DAY, HOUR, Customer, World, is_weekend, next_tier

FAILURE_SHARE = 0.05  # of renewals (other than the reserved customers')
FAILURE_CODES = ("card_declined", "insufficient_funds", "expired_card")
FAILURE_WEIGHTS = (50, 35, 15)
RETRY_AFTER = (timedelta(hours=22), timedelta(hours=44))
ONE_OFF_AMOUNTS = (500, 600, 800, 900, 1000)
CUSTOMERS_PER_DAILY_ONE_OFF = 25  # weekday one-off charges per currency = customers / 25
WEEKEND_SHARE = 0.4
REFUND_EVERY = timedelta(days=3)
MAX_REFUND = 1_000  # refund_spike's share rule: 10% of 7 days' revenue with 3 refunds or more
MAX_REFUNDS_PER_WEEK = 2  # per currency
DISPUTE_DAYS, EFW_DAYS, EVERY_30_DAYS = 20, 12, 30
UPGRADE_FIRST, UPGRADE_EVERY = 3, 6
DOWNGRADE_FIRST, DOWNGRADE_EVERY = 5, 10
MAX_DOWNGRADE_LOSS = 10_000  # per month; plan_downgrade fires from 50,000


def build_schedule(world: World) -> Schedule:
    rng = Random(f"{world.seed}:schedule")
    schedule = Schedule(world)
    _add_signups_and_renewals(schedule)
    _add_plan_changes(schedule, rng)
    _add_one_offs(schedule, rng)
    schedule.guard = build_guard(schedule)
    _add_cancellations(schedule, rng)
    _add_failures(schedule, rng)
    _add_refunds(schedule, rng)
    _add_disputes_and_warnings(schedule, rng)
    return schedule


def one_off_base(world: World, currency: str) -> int:
    """Weekday one-off charges per day in a currency."""
    count = sum(1 for c in world.customers if c.currency == currency)
    return max(1, round(count / CUSTOMERS_PER_DAILY_ONE_OFF)) if count else 0


def build_guard(schedule: Schedule) -> RevenueGuard:
    due, actual = defaultdict(int), defaultdict(int)
    for renewal in schedule.renewals:
        if renewal.billed:
            due[(renewal.currency, renewal.period_start.date())] += renewal.amount
    for one_off in schedule.one_offs:
        if one_off.succeeded:
            actual[(one_off.currency, one_off.at.date())] += one_off.amount
    mean = sum(ONE_OFF_AMOUNTS) / len(ONE_OFF_AMOUNTS)
    expected = {currency: round(one_off_base(schedule.world, currency) * mean) for currency in ("usd", "eur")}
    return RevenueGuard(due, expected, actual, [day.date() for day in schedule.world.days])


def _add_signups_and_renewals(schedule: Schedule) -> None:
    world, ids = schedule.world, schedule.world.ids
    for customer in sorted((c for c in world.customers if c.signup), key=lambda c: c.signup):
        charge_id = None if customer.trial else ids.next("ch")
        schedule.signups.append(Signup(customer, ids.next("in"), charge_id))
    cycles = [(start, c.number, k, c) for c in world.customers for k, start in c.cycles_between(world.start, world.end)]
    for start, _number, k, customer in sorted(cycles, key=lambda item: item[:2]):
        previous = customer.signup if (customer.trial and k == 0) else customer.cycle_start(k - 1)
        renewal = Renewal(
            customer=customer,
            period_start=start,
            period_end=customer.cycle_start(k + 1),
            previous_start=previous,
            plan=customer.plan,
            from_trial=customer.trial and k == 0,
            invoice_id=ids.next("in"),
            number=f"{customer.invoice_prefix}-{k + 7:04d}",
        )
        renewal.attempts.append(Attempt(start + CHARGE_AFTER, ids.next("ch")))
        schedule.renewals.append(renewal)


def _is_settled(customer: Customer, moment: datetime) -> bool:
    """Past its trial and sign-up: a customer whose plan can change."""
    return (customer.signup is None or customer.signup < moment - DAY) and not (
        customer.trial and moment < customer.anchor
    )


def _away_from_renewals(schedule: Schedule, customer: Customer, moment: datetime, margin: timedelta) -> bool:
    return all(abs(r.period_start - moment) > margin for r in schedule.renewals_of(customer))


def _add_plan_changes(schedule: Schedule, rng: Random) -> None:
    world = schedule.world
    span = (world.end - world.start) / DAY
    for first, every, step in ((UPGRADE_FIRST, UPGRADE_EVERY, 1), (DOWNGRADE_FIRST, DOWNGRADE_EVERY, -1)):
        offset = first
        while offset < span - 1:
            moment = world.start + DAY * offset + timedelta(minutes=rng.randrange(6 * 60))
            _change_one_plan(schedule, rng, moment, step)
            offset += every
    schedule.plan_changes.sort(key=lambda c: c.at)


def _change_one_plan(schedule: Schedule, rng: Random, moment: datetime, step: int) -> None:
    changed = {c.customer.number for c in schedule.plan_changes}
    candidates = [
        c for c in schedule.world.customers
        if not c.reserved and c.plan.interval == "month" and c.number not in changed
        and _is_settled(c, moment) and _away_from_renewals(schedule, c, moment, 2 * DAY)
    ]
    rng.shuffle(candidates)
    for customer in candidates:
        old = schedule.plan_at(customer, moment)
        tier = next_tier(old.tier, step)
        if tier is not None:
            new = old.with_tier(tier)
        elif step < 0 and old.quantity > 1:
            new = old.with_quantity(old.quantity - 1)
        else:
            continue
        if step < 0 and old.monthly_amount - new.monthly_amount > MAX_DOWNGRADE_LOSS:
            continue
        record_plan_change(schedule, PlanChange(customer, moment, old, new))
        return


def record_plan_change(schedule: Schedule, change: PlanChange) -> None:
    """Add the change and re-price the customer's later renewals."""
    schedule.plan_changes.append(change)
    for renewal in schedule.renewals_of(change.customer):
        if renewal.period_start > change.at:
            renewal.plan = change.new


def _active_at(schedule: Schedule, customer: Customer, moment: datetime) -> bool:
    if customer.signup is not None and customer.signup > moment - HOUR:
        return False
    return not any(r.canceled and r.period_start <= moment for r in schedule.renewals_of(customer))


def _add_one_offs(schedule: Schedule, rng: Random) -> None:
    world = schedule.world
    for day in world.days:
        for currency in ("usd", "eur"):
            base = one_off_base(world, currency)
            count = base
            if is_weekend(day):  # 40% of a weekday's sales on average
                share = base * WEEKEND_SHARE
                count = int(share) + (rng.random() < share - int(share))
            for _ in range(count):
                moment = day + timedelta(hours=8) + timedelta(seconds=rng.randrange(12 * 3600))
                if not world.start < moment < world.end:
                    continue
                customer = pick_customer(schedule, rng, currency, moment)
                if customer is not None:
                    amount = rng.choice(ONE_OFF_AMOUNTS)
                    schedule.one_offs.append(OneOff(customer, moment, amount, currency, world.ids.next("ch")))
    schedule.one_offs.sort(key=lambda o: o.at)


def pick_customer(schedule: Schedule, rng: Random, currency: str, moment: datetime,
                  exclude: frozenset = frozenset()) -> Customer | None:
    """A random regular customer of that currency, active and with no other charge near `moment`."""
    candidates = [
        c for c in schedule.world.customers
        if c.currency == currency and not c.reserved and c.number not in exclude
        and _active_at(schedule, c, moment)
    ]
    rng.shuffle(candidates)
    return next((c for c in candidates if schedule.is_free(c, moment)), None)


def _add_cancellations(schedule: Schedule, rng: Random) -> None:
    world, guard = schedule.world, schedule.guard
    span = world.end - world.start
    count = max(1, round(len(world.customers) / 50 * span.days / 30))
    changed = {c.customer.number for c in schedule.plan_changes}
    for i in range(count):
        target = world.start + span * (i + 0.5) / count
        candidates = [
            r for r in schedule.renewals
            if not r.customer.reserved and r.plan.interval == "month" and r.amount <= 4900
            and not r.from_trial and not r.canceled and r.customer.number not in changed
            and r.period_start > world.start + DAY
            and guard.can_lose(r.currency, r.period_start.date(), r.amount)
        ]
        if not candidates:
            return
        renewal = min(candidates, key=lambda r: (abs(r.period_start - target), r.invoice_id))
        cancel(schedule, renewal, renewal.period_start - DAY * rng.randint(2, 12) - HOUR * rng.randint(0, 8))
        changed.add(renewal.customer.number)


def cancel(schedule: Schedule, renewal: Renewal, requested_at: datetime) -> None:
    """End the subscription at this renewal: drop later renewals, hand later one-offs to others."""
    renewal.canceled, renewal.cancel_requested_at = True, requested_at
    schedule.guard.lose(renewal.currency, renewal.period_start.date(), renewal.amount)
    stop_billing_after(schedule, renewal)


def stop_billing_after(schedule: Schedule, renewal: Renewal) -> None:
    """The customer stops paying at this renewal: no later renewals, no later one-off purchases."""
    customer = renewal.customer
    schedule.renewals = [
        r for r in schedule.renewals if not (r.customer is customer and r.period_start > renewal.period_start)
    ]
    hand_over_one_offs(schedule, customer, renewal.period_start)


def hand_over_one_offs(schedule: Schedule, customer: Customer, after: datetime) -> None:
    """Give the customer's one-off purchases after `after` to other customers of the same currency,
    so each day's one-off revenue stays as it was (unless a refund or dispute already names them)."""
    rng = Random(f"{schedule.world.seed}:hand-over:{customer.number}")
    referenced = schedule.referenced_charge_ids()
    for one_off in schedule.one_offs:
        if (one_off.customer is customer and one_off.at >= after and one_off.tag is None
                and one_off.charge_id not in referenced):
            substitute = pick_customer(schedule, rng, one_off.currency, one_off.at, frozenset({customer.number}))
            if substitute is not None:
                one_off.customer = substitute


def _add_failures(schedule: Schedule, rng: Random) -> None:
    """~5% of renewals fail once and succeed on a retry a day or two later; at most one failure a day.

    The failing renewals are drawn among those the revenue guard can afford
    (in practice the smaller plans): the failed day must stay near what was
    due, and the retry day must be free to receive the money (see guard.py).
    """
    guard, ids = schedule.guard, schedule.world.ids
    renewals = [r for r in schedule.renewals if not r.customer.reserved and not r.canceled and r.billed]
    target = round(FAILURE_SHARE * len(renewals))
    rng.shuffle(renewals)
    failed_days = set()
    for renewal in renewals:
        day, currency, amount = renewal.period_start.date(), renewal.currency, renewal.amount
        if len(failed_days) >= target or day in failed_days or not guard.can_lose(currency, day, amount):
            continue
        first = renewal.attempts[0]
        retry_at = _retry_time(guard, rng, first.at, currency, amount)
        if retry_at is None:
            continue
        code = rng.choices(FAILURE_CODES, weights=FAILURE_WEIGHTS)[0]
        renewal.attempts = [
            Attempt(first.at, ids.next("ch"), failure_code=code, next_attempt=retry_at),
            Attempt(retry_at, first.charge_id),
        ]
        failed_days.add(day)
        guard.lose(currency, day, amount)
        guard.gain(currency, retry_at.date(), amount)


def _retry_time(guard, rng: Random, failed_at: datetime, currency: str, amount: int) -> datetime | None:
    """22-44 h after the failure, on a day that can take the money; None if neither day can."""
    delays = [RETRY_AFTER[0] + (RETRY_AFTER[1] - RETRY_AFTER[0]) * rng.random() for _ in range(2)]
    for delay in sorted(delays, key=lambda d: ((failed_at + d).date(), d)):
        retry_at = (failed_at + delay).replace(microsecond=0)
        if guard.can_gain(currency, retry_at.date(), amount):
            return retry_at
    return None


def _add_refunds(schedule: Schedule, rng: Random) -> None:
    world, guard = schedule.world, schedule.guard
    moment = world.start + 1.5 * DAY
    while moment < world.end - HOUR:
        at = moment.replace(hour=0, minute=0, second=0) + timedelta(hours=9, seconds=rng.randrange(9 * 3600))
        taken = schedule.referenced_charge_ids()
        candidates = [
            c for c in schedule.successful_charges()
            if at - 10 * DAY <= c.at <= at - 2 * DAY and not c.customer.reserved and c.id not in taken
        ]
        rng.shuffle(candidates)
        candidates.sort(key=lambda c: c.invoice_id is not None)  # one-off purchases first
        for charge in candidates:
            # A one-off purchase is refunded in full; a renewal gets a goodwill credit of ~20%.
            amount = charge.amount if charge.invoice_id is None else min(charge.amount // 500 * 100, MAX_REFUND)
            recent = [r for r in schedule.refunds if r.charge.currency == charge.currency and at - r.at < 7 * DAY]
            if (world.start < at < world.end and len(recent) < MAX_REFUNDS_PER_WEEK
                    and guard.can_lose(charge.currency, at.date(), amount)):
                schedule.refunds.append(Refund(charge, at, amount, world.ids.next("re")))
                guard.lose(charge.currency, at.date(), amount)
                break
        moment += REFUND_EVERY


def _add_disputes_and_warnings(schedule: Schedule, rng: Random) -> None:
    world = schedule.world
    span = (world.end - world.start) / DAY
    for first, kind in ((EFW_DAYS, "efw"), (DISPUTE_DAYS, "dispute")):
        offset = first
        while offset < span - 0.5:
            at = world.start + DAY * offset + timedelta(seconds=rng.randrange(8 * 3600))
            charge = _old_charge(schedule, rng, at)
            if charge is not None and kind == "efw":
                schedule.fraud_warnings.append(FraudWarning(charge, at, world.ids.next("issfr")))
            elif charge is not None:
                reason = rng.choice(("fraudulent", "product_not_received", "subscription_canceled"))
                schedule.disputes.append(Dispute(charge, at, world.ids.next("dp"), reason))
            offset += EVERY_30_DAYS


def _old_charge(schedule: Schedule, rng: Random, at: datetime) -> ChargeRef | None:
    taken = schedule.referenced_charge_ids()
    candidates = [
        c for c in schedule.successful_charges()
        if at - 15 * DAY <= c.at <= at - 5 * DAY and not c.customer.reserved and c.id not in taken
    ]
    return rng.choice(candidates) if candidates else None
