"""What an injection function works with: the schedule, its day, its own random stream, its label.

Also the shared ways injections pick records: a plainly paid renewal near the
injection's day that no other injection has touched, or the customers still
active at a moment.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random

from anomalies.simulation.records import Renewal, Schedule
from anomalies.simulation.world import DAY, HOUR, Customer, Plan, random_card


class SimulationError(ValueError):
    """The request cannot be simulated; str(exc) says why and what to change."""


LIVE_ONLY = {
    "webhook_lag": "webhook_lag needs live webhook delivery (Stripe's delivery delay sets received_at); "
    "imported events never count for lag, so it cannot be injected into a file",
    "webhook_silence": "webhook_silence needs live webhook delivery (a gap between deliveries); "
    "imported events never count, so it cannot be injected into a file",
}


@dataclass
class Injection:
    """What an injection function gets: the schedule, its day, its own random stream and tag."""

    name: str
    schedule: Schedule
    day: datetime  # midnight UTC of the day chosen for it
    rng: Random
    tag: int

    @property
    def world(self):
        return self.schedule.world

    def at_hour(self, first: int, last: int) -> datetime:
        return self.day + timedelta(hours=self.rng.randint(first, last), minutes=self.rng.randrange(60))

    def label(self, at: datetime, customer: Customer | None, window: tuple[datetime, datetime] | None = None,
              may_also_fire: tuple[str, ...] = (), **related) -> dict:
        label = {"detector": self.name, "at": iso(at), "livemode": self.world.livemode,
                 "customer_id": customer.id if customer else None}
        for key in ("subscription_id", "invoice_id", "charge_id", "currency"):  # a fixed key order
            if related.get(key) is not None:
                label[key] = related[key]
        start, end = window or (at, at)
        label["window"] = {"start": iso(start), "end": iso(end)}
        label["may_also_fire"] = list(may_also_fire)
        return label

    def earliest(self) -> datetime:
        """Injected anomalies happen at least 8 days in and in the second half of the window."""
        world = self.world
        return max(world.start + 8 * DAY, world.start + (world.end - world.start) / 2)

    def new_customer(self, plan: Plan, created: datetime) -> Customer:
        world = self.world
        number = len(world.customers) + 1
        suffix = f"{world.seed}_{number}"
        customer = Customer(
            number=number, id=f"cus_sim_{suffix}", subscription_id=f"sub_sim_{suffix}", item_id=f"si_sim_{suffix}",
            plan=plan, anchor=created, anchor_day=created.day, created=created,
            card=random_card(self.rng, plan.currency, created.year), email=f"buyer.{number}@example.net",
            name=f"Buyer {number}", invoice_prefix=f"INJ{number:05d}", role="injected",
        )
        world.customers.append(customer)
        return customer


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def renewal_near(inj: Injection, accept: Callable[[Renewal], bool], free=lambda r: True,
                  prefer=lambda r: 0) -> Renewal:
    """An untouched, plainly paid renewal: one whose side effects are `free` first, then one within
    2 days of the injection's day, then as `prefer` says, then the closest."""
    referenced = inj.schedule.referenced_charge_ids()
    candidates = [
        r for r in inj.schedule.renewals
        if r.tag is None and not r.customer.reserved and r.collected and len(r.attempts) == 1
        and r.attempts[0].charge_id not in referenced and inj.earliest() <= r.period_start <= inj.world.end - DAY
        and accept(r)
    ]
    if not candidates:
        raise SimulationError(f"{inj.name}: no suitable renewal in the window; use more --customers or --days")

    def distance(r: Renewal) -> timedelta:
        return abs(r.period_start - inj.day - 12 * HOUR)

    return min(candidates, key=lambda r: (not free(r), distance(r) > 2 * DAY, prefer(r), distance(r), r.invoice_id))


def active_customers(inj: Injection, moment: datetime) -> list[Customer]:
    cancelled = {r.customer.number for r in inj.schedule.renewals if r.canceled or r.ends_unpaid}
    return [
        c for c in inj.world.customers
        if not c.reserved and c.number not in cancelled and (c.signup is None or c.signup < moment - HOUR)
    ]
