"""Keeps every currency-day of normal traffic well inside revenue_drop's thresholds.

revenue_drop flags a day whose revenue in a currency is >=15% below what was
expected (the renewals due that day plus the usual other revenue for that
weekday, a median of the same weekday over the previous weeks), once the
expectation is at least 10,000 minor units. Normal life moves money between
days, in two ways the guard books:

- A day can lose money: a renewal that fails (paid on a retry a day or two
  later), a cancellation at period end, a refund, a quiet weekend. The guard
  refuses a loss that would take the day past 12% short.
- A day can gain money that is not a renewal due that day: the retry of an
  earlier renewal, an injected duplicate charge, the catch-up after an outage.
  Such "other" revenue raises what the same weekday is expected to bring in
  the following weeks. One such day is absorbed by the median; two on the
  same weekday within five weeks would make the next one look short. So a
  significant gain (over 5% of a typical day) needs its weekday free.

Injections use the same guard to pick the least disturbing place for their
side effects.
"""

import statistics
from collections import defaultdict
from datetime import date, timedelta

MAX_SHORTFALL = 0.12  # the detector's bar is 0.15
UNGUARDED_BELOW = 8_000  # the detector ignores days expected below 10,000
SIGNIFICANT_GAIN = 0.05  # of a typical day: smaller gains cannot move the expectation far
SAME_WEEKDAY_SPAN = timedelta(days=35)  # the detector looks back 4 weeks for the same weekday


class RevenueGuard:
    def __init__(self, due: dict[tuple[str, date], int], one_off_expected: dict[str, int],
                 one_off_actual: dict[tuple[str, date], int], days: list[date]):
        self.due = defaultdict(int, due)
        self.one_off_expected = defaultdict(int, one_off_expected)
        self.one_off_actual = defaultdict(int, one_off_actual)
        self.lost: dict[tuple[str, date], int] = defaultdict(int)
        self.gained: dict[tuple[str, date], int] = defaultdict(int)  # revenue not due on its day
        self.typical = {  # a typical day's expected revenue, per currency
            currency: statistics.median([self.due[(currency, day)] for day in days] or [0]) + expected
            for currency, expected in one_off_expected.items()
        }

    def expected(self, currency: str, day: date) -> int:
        return self.due[(currency, day)] + self.one_off_expected[currency]

    def shortfall(self, currency: str, day: date) -> int:
        quiet = max(0, self.one_off_expected[currency] - self.one_off_actual[(currency, day)])
        return quiet + self.lost[(currency, day)]

    def can_lose(self, currency: str, day: date, amount: int) -> bool:
        expected = self.expected(currency, day)
        if expected < UNGUARDED_BELOW:
            return True
        return self.shortfall(currency, day) + amount <= MAX_SHORTFALL * expected

    def lose(self, currency: str, day: date, amount: int) -> None:
        self.lost[(currency, day)] += amount

    def headroom(self, currency: str, day: date) -> float:
        """How much more the day could lose, as a share of its expectation (for ranking)."""
        expected = self.expected(currency, day)
        if expected < UNGUARDED_BELOW:
            return 1.0
        return MAX_SHORTFALL - self.shortfall(currency, day) / expected

    def significant(self, currency: str, amount: int) -> bool:
        return amount > SIGNIFICANT_GAIN * self.typical.get(currency, 0)

    def can_gain(self, currency: str, day: date, amount: int) -> bool:
        """Whether `day` may receive `amount` more of revenue that is not a renewal due that day."""
        if not self.significant(currency, self.gained[(currency, day)] + amount):
            return True
        return not any(
            other != day and abs(day - other) < SAME_WEEKDAY_SPAN and (day - other).days % 7 == 0
            and self.significant(currency, gained)
            for (c, other), gained in self.gained.items() if c == currency
        )

    def gain(self, currency: str, day: date, amount: int) -> None:
        self.gained[(currency, day)] += amount
