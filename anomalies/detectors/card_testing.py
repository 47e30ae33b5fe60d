"""card_testing: a burst of failed charges from one customer, one card, or many cards at once.

Fraudsters check stolen card numbers by making many small charges quickly;
most fail. The rule fires (critical) when, within window_minutes (a window
(X - window, X] ending at a failed charge X):

- one customer has at least min_failures failed charges ("customer:<id>");
- one card fingerprint has at least min_failures failed charges, not all of
  one customer (those are the customer's anomaly already) ("card:<fp>");
- the whole tenant has at least tenant_failures failed charges across at
  least tenant_distinct_cards distinct card fingerprints, not all of one
  customer ("tenant").

Each distinct charge counts once (a redelivered or second event about the
same charge id is not another attempt).

Order: every rule is monotone (more failures can only make it true), so a
failed charge F is judged together with its neighbours in (F - window,
F + window): for each failed charge X at or after F, the window ending at X
is entirely inside that range. Whichever event of a burst is processed last
sees the whole burst, so a burst delivered in any order, one event at a
time, is found, and nothing is found that the complete data would not show.
The occurrence key is the window-sized time slot of the burst's window end
(e.g. the 10-minute slot, UTC): the same facts give the same keys in any
order, a long attack counts once per slot, and evaluating it again adds
nothing. A slot is described by its earliest window that meets the rule.

Queries per charge.failed: one indexed read of the (tenant, livemode, type,
created) range, columns only (no payloads), bounded to MAX_ROWS (in a storm,
the attempts nearest the event, and the customer's own through the customer
index). Card fingerprints are not a
column, so only when that range holds enough failures for the card or the
tenant rule are the payloads of the failed charges in it read, bounded to
MAX_PAYLOADS rows nearest the event, and the fingerprint taken with
webhooks.payloads.charge_card_fingerprint (payment_method_details.card, or
`source`/`card` on old charges). A stored card fingerprint column would make
that a plain indexed count.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from anomalies.detectors.base import Detector, DetectorContext, Finding, Threshold
from anomalies.models import Severity
from anomalies.registry import register
from webhooks.payloads import charge_card_fingerprint

FAILED = "charge.failed"
MAX_ROWS = 2000  # failed charges read (columns only) around one event
MAX_PAYLOADS = 500  # failed charges whose payload is read, split before and after the event
MAX_EVENT_IDS = 50


@dataclass(frozen=True, slots=True)
class Attempt:
    created: datetime
    charge_id: str
    stripe_id: str
    customer_id: str


@dataclass(frozen=True, slots=True)
class Burst:
    end: datetime
    attempts: tuple[Attempt, ...]  # in the window ending at `end`, oldest first


def _attempts(rows) -> list[Attempt]:
    """One attempt per charge (its earliest event), in time order."""
    by_charge: dict[str, Attempt] = {}
    for created, object_id, stripe_id, customer_id in rows:
        key = object_id or stripe_id
        if key not in by_charge or created < by_charge[key].created:
            by_charge[key] = Attempt(created, key, stripe_id, customer_id)
    return sorted(by_charge.values(), key=lambda a: (a.created, a.charge_id))


def _windows(attempts: list[Attempt], since: datetime, window: timedelta):
    """(end, first, stop) for each window (end - window, end] ending at an attempt at or after `since`.

    attempts[first:stop] are the attempts in it; ties at `end` all belong to it.
    """
    first = i = 0
    while i < len(attempts):
        end = attempts[i].created
        stop = i
        while stop < len(attempts) and attempts[stop].created == end:
            stop += 1
        while attempts[first].created <= end - window:
            first += 1
        i = stop
        if end >= since:
            yield end, first, stop


def _bursts(attempts: list[Attempt], since: datetime, window: timedelta, qualifies) -> list[Burst]:
    """Per window-sized time slot, the earliest window ending at an attempt >= since that qualifies.

    `qualifies(first, stop)` judges attempts[first:stop]; it is called with both
    ends only moving forward, so rules can keep sliding counts. The earliest
    qualifying window of a slot is the one met first when events arrive in time
    order, so an anomaly reads the same whether its events came one by one or
    were imported at once; and once a slot has its burst, the rest of the slot
    is skipped, so a storm of attempts costs little.
    """
    slot_seconds = window.total_seconds()
    bursts, done = [], set()
    for end, first, stop in _windows(attempts, since, window):
        slot = int(end.timestamp() // slot_seconds)
        if slot not in done and qualifies(first, stop):
            bursts.append(Burst(end, tuple(attempts[first:stop])))
            done.add(slot)
    return bursts


class _Sliding:
    """Counts of key(attempt) over attempts[first:stop], as first and stop only move forward."""

    def __init__(self, attempts: list[Attempt], key):
        self.attempts, self.key = attempts, key
        self.first = self.stop = 0
        self.counts: Counter = Counter()

    def move(self, first: int, stop: int) -> Counter:
        while self.stop < stop:
            self.counts[self.key(self.attempts[self.stop])] += 1
            self.stop += 1
        while self.first < first:
            value = self.key(self.attempts[self.first])
            self.counts[value] -= 1
            if not self.counts[value]:
                del self.counts[value]
            self.first += 1
        return self.counts


def _one_customer(attempts) -> str:
    """The customer of all these attempts, or "" (several, or none)."""
    customers = {a.customer_id for a in attempts}
    return customers.pop() if len(customers) == 1 else ""


def _single_customer(counts: Counter) -> bool:
    """All attempts of the window belong to one and the same customer."""
    return len(counts) == 1 and "" not in counts


@register
class CardTesting(Detector):
    name = "card_testing"
    title = "Card testing"
    description = (
        "A burst of failed charges within minutes for one customer, on one card, or across many "
        "cards at once: usually someone testing stolen card numbers through your checkout."
    )
    event_types = frozenset({FAILED})
    thresholds = (
        Threshold("window_minutes", 10, 1, 1440, "Length of the burst window, in minutes", int),
        Threshold("min_failures", 5, 2, 10000, "Failed charges of one customer or one card in the window", int),
        Threshold("tenant_failures", 20, 2, 100000, "Failed charges across the tenant in the window", int),
        Threshold(
            "tenant_distinct_cards", 10, 2, 100000,
            "Distinct cards among the tenant's failed charges in the window", int,
        ),
    )

    def evaluate(self, ctx: DetectorContext, event):
        t = ctx.thresholds
        window = timedelta(minutes=t["window_minutes"])
        at = event.created
        failed = ctx.events().filter(type=FAILED, created__gt=at - window, created__lt=at + window)
        columns = ("created", "object_id", "stripe_id", "customer_id")
        rows = list(failed.order_by("created", "id").values_list(*columns)[:MAX_ROWS])
        if len(rows) == MAX_ROWS:  # a storm: keep the attempts nearest the event, on both sides
            half = MAX_ROWS // 2
            rows = [
                *failed.filter(created__lte=at).order_by("-created", "-id").values_list(*columns)[:half],
                *failed.filter(created__gt=at).order_by("created", "id").values_list(*columns)[:half],
            ]
        attempts = _attempts(rows)
        min_failures = t["min_failures"]

        # One customer.
        if event.customer_id:
            mine = [a for a in attempts if a.customer_id == event.customer_id]
            if len(rows) >= MAX_ROWS:  # a storm: read this customer's own attempts through its index
                mine = _attempts(
                    failed.filter(customer_id=event.customer_id).order_by("created", "id").values_list(*columns)[
                        :MAX_ROWS
                    ]
                )
            for burst in _bursts(mine, at, window, lambda first, stop: stop - first >= min_failures):
                yield self._finding(ctx, f"customer:{event.customer_id}", "customer", burst, {})

        # One card, or many cards: only worth reading payloads if the failures are there.
        busiest = max((stop - first for _, first, stop in _windows(attempts, at, window)), default=0)
        card = charge_card_fingerprint(event.payload.get("data", {}).get("object"))
        need_card = bool(card) and busiest >= min_failures
        need_tenant = busiest >= t["tenant_failures"]
        if not (need_card or need_tenant):
            return
        cards = self._fingerprints(failed, at)
        if card:
            cards.setdefault(event.object_id or event.stripe_id, card)

        if need_card:
            on_card = [a for a in attempts if cards.get(a.charge_id) == card]
            card_customers = _Sliding(on_card, lambda a: a.customer_id)

            def card_burst(first, stop):
                # All of one customer: that customer's own anomaly already says it.
                return stop - first >= min_failures and not _single_customer(card_customers.move(first, stop))

            for burst in _bursts(on_card, at, window, card_burst):
                yield self._finding(ctx, f"card:{card}", "card", burst, cards, card=card)

        if need_tenant:
            customers = _Sliding(attempts, lambda a: a.customer_id)
            distinct = _Sliding(attempts, lambda a: cards.get(a.charge_id, ""))

            def tenant_burst(first, stop):
                if stop - first < t["tenant_failures"] or _single_customer(customers.move(first, stop)):
                    return False
                on_cards = distinct.move(first, stop)
                return len(on_cards) - ("" in on_cards) >= t["tenant_distinct_cards"]

            for burst in _bursts(attempts, at, window, tenant_burst):
                yield self._finding(ctx, "tenant", "tenant", burst, cards)

    @staticmethod
    def _fingerprints(failed, at: datetime) -> dict[str, str]:
        """charge id -> card fingerprint of the failed charges nearest `at` (bounded payload reads)."""
        half = MAX_PAYLOADS // 2
        before = failed.filter(created__lte=at).order_by("-created", "-id")
        after = failed.filter(created__gt=at).order_by("created", "id")
        cards = {}
        for rows in (before, after):
            for object_id, stripe_id, payload in rows.values_list("object_id", "stripe_id", "payload")[:half]:
                obj = payload.get("data", {}).get("object") if isinstance(payload, dict) else None
                fingerprint = charge_card_fingerprint(obj)
                if fingerprint:
                    cards.setdefault(object_id or stripe_id, fingerprint)
        return cards

    def _finding(self, ctx, fingerprint: str, rule: str, burst: Burst, cards: dict, card: str = ""):
        minutes = int(ctx.thresholds["window_minutes"])
        attempts = burst.attempts
        count = len(attempts)
        distinct_cards = len({cards[a.charge_id] for a in attempts if cards.get(a.charge_id)})
        customers = sorted({a.customer_id for a in attempts if a.customer_id})
        customer = _one_customer(attempts)
        start = attempts[0].created
        if rule == "customer":
            title = f"Card testing: {count} failed charges for {customer} in {minutes} min"
            who = f"Customer {customer} had {count} failed charges"
            block = "Block the customer in Stripe Radar"
        elif rule == "card":
            title = f"Card testing: {count} failed charges on card {card} in {minutes} min"
            who = f"The card with fingerprint {card} failed {count} times"
            block = "Block the card fingerprint in Stripe Radar"
        else:
            title = f"Card testing: {count} failed charges on {distinct_cards} cards in {minutes} min"
            who = f"{count} charges failed on {distinct_cards} different cards"
            block = "Turn on Radar rules for velocity and block the sources"
        if rule != "customer":
            who += f" (customers: {len(customers)})" if customers else " (no customer on the charges)"
        slot = int(burst.end.timestamp() // (minutes * 60))
        return Finding(
            fingerprint=fingerprint,
            severity=Severity.CRITICAL,
            title=title,
            summary=(
                f"{who} between {start:%Y-%m-%d %H:%M:%S} and {burst.end:%H:%M:%S} UTC. This looks like card "
                f"testing. {block}, add a CAPTCHA or rate limit to the checkout, require 3D Secure, and refund "
                "any charge from the same source that went through."
            ),
            occurred_at=burst.end,
            occurrence_key=datetime.fromtimestamp(slot * minutes * 60, tz=UTC).isoformat(),
            customer_id=customer,
            event_ids=tuple(a.stripe_id for a in attempts[-MAX_EVENT_IDS:]),
            metrics={
                "rule": rule,
                "window_minutes": minutes,
                "window_start": start.isoformat(),
                "window_end": burst.end.isoformat(),
                "failures": count,
                "distinct_cards": distinct_cards,
                "customers": customers[:20],
                "card_fingerprint": card,
                "charge_ids": [a.charge_id for a in attempts[-MAX_EVENT_IDS:]],
            },
        )
