"""currency_mismatch: a customer with an established currency is charged in another one.

A customer's first `home_charges` successful charges (charge.succeeded, in
the order they were created) set their home currency, but only if they all
share one: a customer who paid in two currencies from the start has no home
currency and never fires. A later successful charge in any other currency
fires: usually a misconfigured price (a EUR price attached to a USD
customer), a checkout that picked the wrong currency, or a stolen card used
on an existing account.

Everything is measured by the charges' own created times, never by arrival,
so delivery order does not matter: when a late event completes or belongs to
the home set, the customer's later charges are checked too. Distinct charge
ids are counted, so a re-sent event is not a second charge. One anomaly per
customer and foreign currency; each foreign charge is one occurrence.
"""

from anomalies.detectors.base import Detector, DetectorContext, Finding, Threshold
from anomalies.models import Severity
from anomalies.registry import register
from anomalies.text import money

CHARGE_SUCCEEDED = "charge.succeeded"
# A home set checks at most this many later foreign charges at once (out-of-order catch-up).
MAX_LATER_CHARGES = 100


@register
class CurrencyMismatch(Detector):
    name = "currency_mismatch"
    title = "Currency mismatch"
    description = (
        "A customer whose first successful charges were all in one currency was charged in another currency: "
        "usually a wrong price or checkout configuration, sometimes fraud on an existing account."
    )
    event_types = frozenset({CHARGE_SUCCEEDED})
    thresholds = (
        Threshold(
            "home_charges", 3, 2, 50,
            "How many first successful charges, all in one currency, set a customer's home currency",
            int,
        ),
    )

    def evaluate(self, ctx: DetectorContext, event):
        if not event.customer_id or not event.currency or not event.object_id:
            return
        count = ctx.thresholds["home_charges"]
        home = self._first_charges(ctx, event.customer_id, count)
        if len(home) < count:
            return  # not enough history yet (a late earlier charge re-checks what follows it)
        currencies = {currency for _, _, currency, _, _ in home}
        if len(currencies) != 1 or "" in currencies:
            return  # no single home currency: nothing to mismatch
        home_currency = currencies.pop()
        home_ids = {charge_id for _, charge_id, _, _, _ in home}
        if event.object_id not in home_ids:
            if event.currency != home_currency:
                yield self._finding(event.customer_id, home, home_currency,
                                    (event.created, event.object_id, event.currency, event.stripe_id, event.amount))
            return
        # This charge is part of the home set, maybe delivered late: check what came after the set.
        later = (
            ctx.events()
            .filter(customer_id=event.customer_id, type=CHARGE_SUCCEEDED, created__gte=home[-1][0])
            .exclude(currency=home_currency)
            .exclude(currency="")
            .exclude(object_id__in=home_ids)
            .order_by("created", "object_id", "stripe_id")
            .values_list("created", "object_id", "currency", "stripe_id", "amount")[:MAX_LATER_CHARGES]
        )
        seen = set()
        for charge in later:
            if charge[1] and charge[1] not in seen:
                seen.add(charge[1])
                yield self._finding(event.customer_id, home, home_currency, charge)

    @staticmethod
    def _first_charges(ctx, customer: str, count: int) -> list[tuple]:
        """The customer's first `count` distinct successful charges: (created, id, currency, event id, amount)."""
        limit = count * 2 + 2
        while True:
            rows = list(
                ctx.events()
                .filter(customer_id=customer, type=CHARGE_SUCCEEDED)
                .order_by("created", "object_id", "stripe_id")
                .values_list("created", "object_id", "currency", "stripe_id", "amount")[:limit]
            )
            charges, seen = [], set()
            for row in rows:
                if row[1] and row[1] not in seen:
                    seen.add(row[1])
                    charges.append(row)
            if len(charges) >= count or len(rows) < limit:
                return charges[:count]
            limit *= 4  # many re-sent events of the same charges: look further

    @staticmethod
    def _finding(customer: str, home: list[tuple], home_currency: str, charge: tuple) -> Finding:
        created, charge_id, currency, stripe_id, amount = charge
        amount_text = money(amount, currency) if amount is not None else currency.upper()
        home_code = home_currency.upper()
        return Finding(
            fingerprint=f"{customer}:{currency}",
            severity=Severity.HIGH,
            title=f"Charge of {amount_text} to {customer}, whose charges so far were in {home_code}",
            summary=(
                f"Customer {customer} was charged {amount_text} (charge {charge_id}), but their first "
                f"{len(home)} successful charges ({', '.join(c[1] for c in home)}) were all in {home_code}. "
                "Check which price or checkout produced this charge, and whether the customer expected to pay "
                f"in {currency.upper()}; if they did not, refund it and fix the price."
            ),
            occurred_at=created,
            occurrence_key=charge_id,
            customer_id=customer,
            event_ids=(*(c[3] for c in home), stripe_id),
            metrics={
                "charge_id": charge_id,
                "amount": amount,
                "currency": currency,
                "home_currency": home_currency,
                "home_charge_ids": [c[1] for c in home],
            },
        )
