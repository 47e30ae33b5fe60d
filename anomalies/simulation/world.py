"""The simulated business: its customers, their plans and the calendar they bill on.

Everything here is decided once, from the seed, before any event exists, so the
rest of the simulator only reads it. Billing anchors are spread over the days of
the month so that every day carries a similar amount of renewals per currency:
a detector that compares a day's revenue with the renewals due that day then
sees ordinary days as ordinary, which is what the zero-false-positive benchmark
needs.
"""

import calendar
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random

API_VERSION = "2024-06-20"  # pre-basil: invoice.charge/subscription, subscription.current_period_*
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)

USD_SHARE = 0.75
YEARLY_SHARE = 0.10
SEATS_SHARE = 0.10  # customers paying for 2-5 seats
TRIAL_DAYS = 14


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    unit_amount: int  # minor units
    interval: str  # "month" or "year"


MONTHLY_TIERS = (
    Tier("starter", 2900, "month"),
    Tier("growth", 4900, "month"),
    Tier("pro", 9900, "month"),
    Tier("business", 19900, "month"),
)
MONTHLY_WEIGHTS = (35, 35, 20, 10)
YEARLY_TIERS = (
    Tier("starter_annual", 29000, "year"),
    Tier("growth_annual", 49000, "year"),
    Tier("pro_annual", 99000, "year"),
)


@dataclass(frozen=True, slots=True)
class Plan:
    tier: Tier
    currency: str
    quantity: int = 1

    @property
    def amount(self) -> int:
        return self.tier.unit_amount * self.quantity

    @property
    def interval(self) -> str:
        return self.tier.interval

    @property
    def monthly_amount(self) -> int:
        return self.amount if self.interval == "month" else self.amount // 12

    def with_tier(self, tier: Tier) -> "Plan":
        return Plan(tier, self.currency, self.quantity)

    def with_quantity(self, quantity: int) -> "Plan":
        return Plan(self.tier, self.currency, quantity)


def next_tier(tier: Tier, step: int) -> Tier | None:
    """The monthly tier `step` places up (+1) or down (-1), or None at either end."""
    if tier not in MONTHLY_TIERS:
        return None
    index = MONTHLY_TIERS.index(tier) + step
    return MONTHLY_TIERS[index] if 0 <= index < len(MONTHLY_TIERS) else None


@dataclass(frozen=True, slots=True)
class Card:
    fingerprint: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    country: str


@dataclass(slots=True)
class Customer:
    number: int
    id: str
    subscription_id: str
    item_id: str
    plan: Plan  # the plan at the window start (or at sign-up)
    anchor: datetime  # start of billing cycle 0 (after the trial, if any)
    anchor_day: int  # day of the month the cycles keep to (clamped in short months)
    created: datetime
    card: Card
    email: str
    name: str
    invoice_prefix: str
    role: str = "regular"  # "seats" / "annual" are reserved for injections
    signup: datetime | None = None  # set when the customer signs up inside the window
    trial: bool = False

    @property
    def currency(self) -> str:
        return self.plan.currency

    @property
    def payment_method_id(self) -> str:
        return "pm_" + self.id.removeprefix("cus_")

    @property
    def reserved(self) -> bool:
        return self.role != "regular"

    @property
    def trial_start(self) -> datetime | None:
        return self.signup if self.trial else None

    @property
    def first_renewal_cycle(self) -> int:
        """Cycle 0 is the trial's end (a renewal), or the sign-up itself (not a renewal)."""
        return 0 if self.trial else 1

    def cycle_start(self, k: int) -> datetime:
        if self.plan.interval == "year":
            return self.anchor.replace(year=self.anchor.year + k)
        years, month0 = divmod(self.anchor.month - 1 + k, 12)
        year, month = self.anchor.year + years, month0 + 1
        day = min(self.anchor_day, calendar.monthrange(year, month)[1])
        return self.anchor.replace(year=year, month=month, day=day)

    def cycles_between(self, low: datetime, high: datetime) -> list[tuple[int, datetime]]:
        """Renewal cycles whose start is strictly inside (low, high)."""
        step = 12 if self.plan.interval == "year" else 1
        months_before = (low.year - self.anchor.year) * 12 + low.month - self.anchor.month
        k = max(self.first_renewal_cycle, months_before // step - 1)
        found = []
        while (start := self.cycle_start(k)) < high:
            if start > low:
                found.append((k, start))
            k += 1
        return found

    def period_at(self, moment: datetime) -> tuple[datetime, datetime]:
        """The billing period containing `moment` (the trial counts as a period)."""
        if self.trial and moment < self.anchor:
            return self.signup, self.anchor
        step = 12 if self.plan.interval == "year" else 1
        months = (moment.year - self.anchor.year) * 12 + moment.month - self.anchor.month
        k = max(0, months // step - 1)
        while self.cycle_start(k + 1) <= moment:
            k += 1
        return self.cycle_start(k), self.cycle_start(k + 1)


class Ids:
    """Deterministic Stripe-looking ids: `<prefix>_sim_<seed>_<n>`, one counter per prefix."""

    def __init__(self, seed: int):
        self.seed = seed
        self._counters: dict[str, int] = {}

    def next(self, prefix: str) -> str:
        n = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = n
        return f"{prefix}_sim_{self.seed}_{n}"


@dataclass
class World:
    seed: int
    start: datetime
    end: datetime
    livemode: bool
    customers: list[Customer]
    ids: Ids = field(repr=False)

    @property
    def days(self) -> list[datetime]:
        """Midnights (UTC) of every calendar day that overlaps the window."""
        day = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        found = []
        while day < self.end:
            found.append(day)
            day += DAY
        return found

    def by_role(self, role: str) -> Customer:
        return next(c for c in self.customers if c.role == role)


def is_weekend(moment: datetime) -> bool:
    return moment.weekday() >= 5


_FIRST_NAMES = ("Ada", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Luis")
_LAST_NAMES = ("Meyer", "Okafor", "Rossi", "Nakamura", "Dubois", "Silva", "Novak", "Jensen", "Haddad", "Kim")
_EUR_COUNTRIES = ("DE", "FR", "NL", "ES", "IE", "IT")


def _card(rng: Random, currency: str, year: int) -> Card:
    return Card(
        fingerprint="".join(rng.choices(string.ascii_letters + string.digits, k=16)),
        brand=rng.choices(("visa", "mastercard", "amex"), weights=(60, 30, 10))[0],
        last4=f"{rng.randrange(10000):04d}",
        exp_month=rng.randint(1, 12),
        exp_year=year + rng.randint(1, 5),
        country="US" if currency == "usd" else rng.choice(_EUR_COUNTRIES),
    )


def random_card(rng: Random, currency: str, year: int) -> Card:
    """A card unrelated to any customer (what a card-testing attack cycles through)."""
    return _card(rng, currency, year)


def _time_of_day(rng: Random, first_hour: int, last_hour: int) -> timedelta:
    return timedelta(hours=rng.randint(first_hour, last_hour), minutes=rng.randrange(60), seconds=rng.randrange(60))


def build_world(seed: int, start: datetime, end: datetime, customer_count: int, livemode: bool) -> World:
    """Customers with plans, cards and billing anchors; the same seed gives the same world."""
    rng = Random(f"{seed}:world")
    ids = Ids(seed)
    days = (end - start) / DAY
    signups = min(round(customer_count * days / 600), customer_count // 4)
    customers = []
    for number in range(1, customer_count + 1):
        role = {1: "seats", 2: "annual"}.get(number, "regular")
        currency = "usd" if role != "regular" or rng.random() < USD_SHARE else "eur"
        if role == "seats":
            plan = Plan(MONTHLY_TIERS[1], currency, 20)
        elif role == "annual":
            plan = Plan(YEARLY_TIERS[2], currency)
        elif number <= customer_count - signups and rng.random() < YEARLY_SHARE:
            plan = Plan(rng.choice(YEARLY_TIERS), currency)
        else:
            quantity = rng.randint(2, 5) if rng.random() < SEATS_SHARE else 1
            plan = Plan(rng.choices(MONTHLY_TIERS, weights=MONTHLY_WEIGHTS)[0], currency, quantity)
        suffix = f"{seed}_{number}"
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        customers.append(
            Customer(
                number=number,
                id=f"cus_sim_{suffix}",
                subscription_id=f"sub_sim_{suffix}",
                item_id=f"si_sim_{suffix}",
                plan=plan,
                anchor=start,  # placed below
                anchor_day=1,
                created=start,
                card=_card(rng, currency, start.year),
                email=f"{first.lower()}.{last.lower()}.{number}@example.com",
                name=f"{first} {last}",
                invoice_prefix="".join(rng.choices(string.ascii_uppercase + string.digits, k=8)),
                role=role,
            )
        )
    regulars = [c for c in customers if c.role == "regular"]
    new_ones = regulars[len(regulars) - signups :] if signups else []
    _place_signups(rng, new_ones, start, end)
    _place_yearly(rng, [c for c in customers if c.plan.interval == "year" and c not in new_ones], start)
    _place_monthly(rng, [c for c in customers if c.plan.interval == "month" and c not in new_ones], start)
    return World(seed, start, end, livemode, customers, ids)


def _place_signups(rng: Random, new_ones: list[Customer], start: datetime, end: datetime) -> None:
    span = (end - start) / DAY - 2
    for customer in new_ones:
        day = (start + DAY * (1 + rng.random() * span)).replace(hour=0, minute=0, second=0, microsecond=0)
        customer.signup = day + _time_of_day(rng, 8, 19)
        customer.created = customer.signup
        # Every sign-up starts with a trial: its first payment is then a renewal due on a known
        # day, never "other" revenue that would raise what the weekday is expected to bring.
        customer.trial = True
        customer.anchor = customer.signup + timedelta(days=TRIAL_DAYS)
        customer.anchor_day = customer.anchor.day


def _place_yearly(rng: Random, yearly: list[Customer], start: datetime) -> None:
    for customer in yearly:
        if customer.role == "annual":
            # Renews two days into the window, so refund_spike has a large charge to refund.
            day = (start + 2 * DAY).replace(hour=0, minute=0, second=0, microsecond=0)
            while day.day > 28:  # keep the anniversary valid in every year
                day += DAY
            years_ago = 1
        else:
            day = (start - DAY * rng.randint(1, 364)).replace(hour=0, minute=0, second=0, microsecond=0)
            years_ago = rng.randint(0, 2)
        if day.day > 28:
            day = day.replace(day=28)
        customer.anchor = (day + _time_of_day(rng, 0, 20)).replace(year=day.year - years_ago)
        customer.anchor_day = customer.anchor.day
        customer.created = customer.anchor - timedelta(minutes=rng.randint(2, 600))


def _place_monthly(rng: Random, monthly: list[Customer], start: datetime) -> None:
    """Greedy balancing: the largest plans first, each to the least-loaded day of the month."""
    load = {(currency, day): 0 for currency in ("usd", "eur") for day in range(1, 32)}
    for customer in sorted(monthly, key=lambda c: (-c.plan.amount, c.number)):
        lightest = min(load[(customer.currency, day)] for day in range(1, 32))
        day = rng.choice([d for d in range(1, 32) if load[(customer.currency, d)] == lightest])
        load[(customer.currency, day)] += customer.plan.amount
        months_ago = rng.randint(2, 30)
        years, month0 = divmod(start.month - 1 - months_ago, 12)
        year, month = start.year + years, month0 + 1
        base = datetime(year, month, min(day, calendar.monthrange(year, month)[1]), tzinfo=UTC)
        customer.anchor = base + _time_of_day(rng, 0, 20)
        customer.anchor_day = day
        customer.created = customer.anchor - timedelta(minutes=rng.randint(2, 600))
