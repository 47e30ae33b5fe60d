"""What happens in the simulated window, as plain records before any Stripe JSON exists.

The normal schedule and the injections both work on these records (an injection
may delay a renewal's payment or make it fail for good), and only then are they
rendered into events. Keeping the decisions apart from the JSON is what lets an
injection change one renewal and have every event of it (invoice, charge,
subscription status) stay consistent.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from anomalies.simulation.guard import RevenueGuard
from anomalies.simulation.world import Card, Customer, Plan, World

FINALIZE_AFTER = timedelta(hours=1)  # Stripe finalizes a renewal invoice ~1 h after creating it
CHARGE_AFTER = FINALIZE_AFTER + timedelta(seconds=5)


@dataclass(slots=True)
class Attempt:
    at: datetime
    charge_id: str
    failure_code: str | None = None  # None: the charge succeeded
    next_attempt: datetime | None = None  # for a failure: Stripe's next retry (None = final attempt)

    @property
    def succeeded(self) -> bool:
        return self.failure_code is None


@dataclass(slots=True)
class Renewal:
    """One billing cycle of a subscription starting inside the window."""

    customer: Customer
    period_start: datetime
    period_end: datetime
    previous_start: datetime
    plan: Plan
    from_trial: bool
    invoice_id: str
    number: str
    attempts: list[Attempt] = field(default_factory=list)
    billed: bool = True  # False: the period advances but no invoice is ever made
    ends_unpaid: bool = False  # after the final failed attempt the subscription becomes `unpaid`
    canceled: bool = False  # the subscription ends at period_start instead of renewing
    cancel_requested_at: datetime | None = None
    announces_period: bool = True  # emits customer.subscription.updated for the new period
    offset: timedelta = timedelta(0)  # invoice created this long after the period start
    tag: int | None = None  # index of the injection label this renewal belongs to

    @property
    def amount(self) -> int:
        return self.plan.amount

    @property
    def currency(self) -> str:
        return self.plan.currency

    @property
    def created_at(self) -> datetime:
        return self.period_start + self.offset

    @property
    def finalized_at(self) -> datetime:
        return self.created_at + FINALIZE_AFTER

    @property
    def payment_intent(self) -> str:
        return "pi_" + self.invoice_id.removeprefix("in_")

    @property
    def paid_at(self) -> datetime | None:
        return next((a.at for a in self.attempts if a.succeeded), None)

    @property
    def collected(self) -> bool:
        return self.billed and not self.canceled and self.paid_at is not None


@dataclass(slots=True)
class Signup:
    """A customer who subscribes inside the window: with a trial (a $0 invoice) or paying now."""

    customer: Customer
    invoice_id: str
    charge_id: str | None  # None for a trial

    @property
    def at(self) -> datetime:
        return self.customer.signup


@dataclass(slots=True)
class PlanChange:
    customer: Customer
    at: datetime
    old: Plan
    new: Plan
    tag: int | None = None

    @property
    def monthly_change(self) -> int:
        return self.new.monthly_amount - self.old.monthly_amount


@dataclass(slots=True)
class OneOff:
    """A charge with no invoice: add-ons, credit packs; or an injected attack or duplicate."""

    customer: Customer
    at: datetime
    amount: int
    currency: str
    charge_id: str
    failure_code: str | None = None
    card: Card | None = None  # None: the customer's own card
    description: str = "One-time purchase"
    tag: int | None = None

    @property
    def succeeded(self) -> bool:
        return self.failure_code is None


@dataclass(frozen=True, slots=True)
class ChargeRef:
    """A successful charge, as refunds, disputes and fraud warnings refer to it."""

    id: str
    customer: Customer
    amount: int
    currency: str
    at: datetime
    invoice_id: str | None
    payment_intent: str


@dataclass(slots=True)
class Refund:
    charge: ChargeRef
    at: datetime
    amount: int
    id: str
    tag: int | None = None


@dataclass(slots=True)
class Dispute:
    charge: ChargeRef
    at: datetime
    id: str
    reason: str
    tag: int | None = None


@dataclass(slots=True)
class FraudWarning:
    charge: ChargeRef
    at: datetime
    id: str
    fraud_type: str = "made_with_stolen_card"
    tag: int | None = None


@dataclass(slots=True)
class Draft:
    """An event before it has an id: sorted by (created, seq) and numbered at the end."""

    created: int
    type: str
    obj: dict
    previous: dict | None = None
    tag: int | None = None


@dataclass
class Schedule:
    world: World
    renewals: list[Renewal] = field(default_factory=list)
    signups: list[Signup] = field(default_factory=list)
    plan_changes: list[PlanChange] = field(default_factory=list)
    one_offs: list[OneOff] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)
    fraud_warnings: list[FraudWarning] = field(default_factory=list)
    extra: list[Draft] = field(default_factory=list)  # injected events rendered directly
    guard: RevenueGuard | None = None

    def plan_at(self, customer: Customer, moment: datetime) -> Plan:
        plan = customer.plan
        for change in sorted(self.plan_changes, key=lambda c: c.at):
            if change.customer is customer and change.at <= moment:
                plan = change.new
        return plan

    def renewals_of(self, customer: Customer) -> list[Renewal]:
        return [r for r in self.renewals if r.customer is customer]

    def successful_charges(self) -> list[ChargeRef]:
        found = []
        for renewal in self.renewals:
            if renewal.collected:
                attempt = next(a for a in renewal.attempts if a.succeeded)
                found.append(
                    ChargeRef(
                        attempt.charge_id, renewal.customer, renewal.amount, renewal.currency,
                        attempt.at, renewal.invoice_id, renewal.payment_intent,
                    )
                )
        for signup in self.signups:
            if signup.charge_id:
                customer = signup.customer
                found.append(
                    ChargeRef(
                        signup.charge_id, customer, customer.plan.amount, customer.currency,
                        signup.at, signup.invoice_id, "pi_" + signup.invoice_id.removeprefix("in_"),
                    )
                )
        for one_off in self.one_offs:
            if one_off.succeeded:
                found.append(
                    ChargeRef(
                        one_off.charge_id, one_off.customer, one_off.amount, one_off.currency,
                        one_off.at, None, "pi_" + one_off.charge_id.removeprefix("ch_"),
                    )
                )
        return sorted(found, key=lambda c: (c.at, c.id))

    def referenced_charge_ids(self) -> set[str]:
        """Charges that a refund, dispute or fraud warning points at (not to be rewritten)."""
        return {r.charge.id for r in (*self.refunds, *self.disputes, *self.fraud_warnings)}

    def charge_times(self, customer: Customer) -> list[datetime]:
        times = [a.at for r in self.renewals if r.customer is customer for a in r.attempts]
        times += [o.at for o in self.one_offs if o.customer is customer]
        times += [s.at for s in self.signups if s.customer is customer and s.charge_id]
        return times

    def is_free(self, customer: Customer, moment: datetime, margin: timedelta = timedelta(hours=2)) -> bool:
        """No other charge of the customer within `margin` (keeps duplicate_charge quiet)."""
        return all(abs(t - moment) > margin for t in self.charge_times(customer))
