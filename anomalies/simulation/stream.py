"""The simulated stream: world, then normal schedule, then injections, then events and labels.

`simulate` is deterministic: it reads no clock and uses only random.Random
instances seeded from the seed (one per concern, so adding an injection does
not reshuffle the normal traffic: the same seed gives the same customers,
renewals and one-off sales with or without injections; only event ids move).

A label says where an injected anomaly is, in event time:

    {"detector": "duplicate_charge",        # the detector that must fire
     "at": "2025-03-20T14:05:40Z",          # when its rule is first crossed
     "livemode": true,
     "customer_id": "cus_sim_7_12",         # null for tenant-wide anomalies
     "subscription_id": ..., "invoice_id": ..., "charge_id": ..., "currency": ...,  # only when relevant
     "window": {"start": ..., "end": ...},  # first and last injected event
     "may_also_fire": [],                   # detectors the injected events legitimately trip as well
     "event_ids": ["evt_sim_7_812", ...]}   # events the injection created or changed
"""

import json
from datetime import UTC, datetime, timedelta
from random import Random

from anomalies.simulation.events import envelope, ts
from anomalies.simulation.injections import INJECTIONS, LIVE_ONLY, Injection, SimulationError, near_seats_renewal
from anomalies.simulation.records import Draft, Schedule
from anomalies.simulation.render import render
from anomalies.simulation.schedule import build_schedule
from anomalies.simulation.world import DAY, build_world

DEFAULT_CUSTOMERS = 150
MIN_CUSTOMERS = 10
INJECTABLE = tuple(INJECTIONS)  # the file-injectable detector names, in canonical order
REVENUE_DROP_MIN_EXPECTED = 12_000  # revenue_drop ignores days expected below 10,000
DAY_FREE_INJECTIONS = {"silent_lapse"}  # timed by the window, not by a chosen day


def simulate(seed: int, days: int, end: datetime, customers: int = DEFAULT_CUSTOMERS, inject=(),
             livemode: bool = True) -> tuple[list[dict], list[dict]]:
    """Events (envelopes, sorted by `created`) and labels of the injected anomalies."""
    names = check_injections(inject)
    if days < 1:
        raise SimulationError("--days must be at least 1")
    if customers < MIN_CUSTOMERS:
        raise SimulationError(f"--customers must be at least {MIN_CUSTOMERS}")
    end = as_utc(end)
    world = build_world(seed, end - timedelta(days=days), end, customers, livemode)
    schedule = build_schedule(world)
    labels = []
    for tag, (name, day) in enumerate(plan_days(schedule, names).items()):
        injection = Injection(name, schedule, day, Random(f"{seed}:inject:{name}"), tag)
        labels.append(INJECTIONS[name](injection))
    events = finalize(schedule, render(schedule), labels)
    labels.sort(key=lambda label: (label["at"], label["detector"]))
    return events, labels


def check_injections(names) -> list[str]:
    """The requested names, deduplicated, in canonical order; unknown or live-only names raise."""
    wanted = set()
    for name in names:
        if name in LIVE_ONLY:
            raise SimulationError(LIVE_ONLY[name])
        if name not in INJECTIONS:
            raise SimulationError(f"unknown injection {name!r}; valid names: {', '.join(INJECTABLE)}")
        wanted.add(name)
    return [name for name in INJECTABLE if name in wanted]


def as_utc(moment: datetime) -> datetime:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=0)


def candidate_days(schedule: Schedule, name: str, names: list[str], chosen: dict[str, datetime]) -> list[datetime]:
    """Days in the second half, at least 8 days in, with a whole day after them in the window."""
    world = schedule.world
    earliest = max(world.start + 8 * DAY, world.start + (world.end - world.start) / 2)
    days = [d for d in world.days if d >= earliest and d + 2 * DAY <= world.end]
    # card_testing's 8 failures also make a failure spike; coming after the injected spike they only
    # add to its open anomaly instead of opening it first (and hiding the spike's own start).
    if name == "charge_failure_spike" and "card_testing" in names and len(days) > 1:
        days = days[:-1]
    if name == "card_testing" and "charge_failure_spike" in chosen:
        days = [d for d in days if d > chosen["charge_failure_spike"]] or days
    if name == "revenue_drop":
        days = [d for d in days if d.weekday() < 5]
        guard = schedule.guard
        # The day after takes the delayed renewals: its weekday must be free to take a large gain.
        days = [d for d in days if guard.can_gain("usd", (d + DAY).date(), 10**12)] or days
        expected = {d: guard.expected("usd", d.date()) for d in days}
        busy = [d for d in days if expected[d] >= REVENUE_DROP_MIN_EXPECTED]
        days = busy or sorted(days, key=lambda d: (-expected[d], d))[:1]  # else the busiest weekday
    if name == "plan_downgrade":
        days = [d for d in days if not near_seats_renewal(schedule, d)]
    return days


def plan_days(schedule: Schedule, names: list[str]) -> dict[str, datetime]:
    """A deterministic day per injection; different injections get different days when possible."""
    taken, chosen = set(), {}
    for name in names:
        allowed = candidate_days(schedule, name, names, chosen)
        if not allowed:
            needed = "a weekday " if name == "revenue_drop" else "a day "
            raise SimulationError(f"{name}: the window has no room for it ({needed}at least 8 days in, in the "
                                  "second half, with a day after it); use --days 12 or more")
        first = Random(f"{schedule.world.seed}:day:{name}").randrange(len(allowed))
        rotated = allowed[first:] + allowed[:first]
        day = next((d for d in rotated if d not in taken), rotated[0])
        if name not in DAY_FREE_INJECTIONS:
            taken.add(day)
        chosen[name] = day
    return chosen


def finalize(schedule: Schedule, drafts: list[Draft], labels: list[dict]) -> list[dict]:
    """Keep what falls strictly inside the window, sort by time, number the events."""
    world = schedule.world
    low, high = ts(world.start), ts(world.end)
    inside = [(draft.created, i, draft) for i, draft in enumerate(drafts) if low < draft.created < high]
    events = []
    for label in labels:
        label["event_ids"] = []
    for n, (_created, _i, draft) in enumerate(sorted(inside, key=lambda item: item[:2]), start=1):
        event_id = f"evt_sim_{world.seed}_{n}"
        events.append(envelope(event_id, draft.type, draft.created, draft.obj, draft.previous, world.livemode))
        if draft.tag is not None:
            labels[draft.tag]["event_ids"].append(event_id)
    return events


def to_jsonl(events: list[dict]) -> str:
    """One compact JSON event per line; the same events always give the same bytes."""
    return "".join(json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n" for event in events)
