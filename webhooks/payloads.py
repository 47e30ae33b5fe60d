"""Reading Stripe event payloads: the one place that knows Stripe's old and new shapes.

Stripe sends each webhook in the API version pinned on the endpoint (or the
account), so one tenant's events can be years older than another's, and
fields move between versions: from 2025-03-31.basil an invoice has no
`charge`, `payment_intent`, `paid` or `subscription` (they moved to `payments`
and `parent`), and a subscription keeps `current_period_*` on its items.
The envelope's `api_version` is not a reliable guide either (it can be null,
missing or mislabelled), so every reader here detects the shape from the
fields that are present and accepts ids where objects are expected and
expanded objects where ids are expected.

Everything else in BillingWatch (ingest, the detectors) goes through these
readers instead of indexing payloads directly. They are pure functions: no
Django, no network, and for a payload that passed `validate_event` they never
raise; an unknown value is returned as None or "". The field moves per version
are listed in shared/reference/stripe-api-shapes.md.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import NoReturn

# The amount column is a 64-bit integer; a larger number in a payload would make
# the insert fail on SQLite with OverflowError, so such an amount reads as unknown.
_MAX_AMOUNT = 2**63 - 1
_CURRENCY_CODE = re.compile(r"[a-z]{3}")

# Event types whose prefix is not the name of the object they carry.
_OBJECT_TYPE_OF_PREFIX = {
    "account.application": "application",
    "account.external_account": "external_account",  # really a bank_account or card
    "application_fee.refund": "fee_refund",
    "charge.dispute": "dispute",
    "charge.refund": "refund",
    "customer.discount": "discount",
    "customer.source": "source",  # really a card, bank_account or source
    "customer.subscription": "subscription",
    "customer.tax_id": "tax_id",
}
_EVENT_TYPE_PREFIX = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")

# Months per billing interval, to normalise a recurring amount to one month.
_MONTHS_PER_INTERVAL = {
    "day": Fraction(12, 365),
    "week": Fraction(12, 52),
    "month": Fraction(1),
    "year": Fraction(12),
}


class NotAStripeEvent(ValueError):
    """The JSON is not a Stripe event envelope; str(exc) says which field is wrong."""


def validate_event(data) -> None:
    """Raise NotAStripeEvent unless `data` has the envelope fields read_event relies on."""

    def reject(reason: str) -> NoReturn:
        raise NotAStripeEvent(f"not a Stripe event: {reason}")

    if not isinstance(data, dict):
        reject(f"expected a JSON object, got {type(data).__name__}")
    if data.get("object") != "event":
        reject("'object' is not 'event'")
    for key, max_length in (("id", 255), ("type", 100)):  # the columns' sizes
        if not isinstance(data.get(key), str):
            reject(f"'{key}' is missing or not a string")
        if not data[key].strip():
            reject(f"'{key}' is empty")
        if len(data[key]) > max_length:
            reject(f"'{key}' is longer than {max_length} characters")
    api_version = data.get("api_version")
    if api_version is not None and (not isinstance(api_version, str) or len(api_version) > 40):
        reject("'api_version' is not a short string")
    created = data.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        reject("'created' is missing or not an integer")
    if _timestamp(created) is None:
        reject("'created' is out of range")
    if not isinstance(data.get("data"), dict):
        reject("'data' is missing or not an object")
    if not isinstance(data["data"].get("object"), dict):
        reject("'data.object' is missing or not an object")
    if "livemode" in data and not isinstance(data["livemode"], bool):
        reject("'livemode' is not a boolean")


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What ingest stores in columns next to the raw payload."""

    stripe_id: str
    type: str
    created: datetime  # tz-aware UTC
    livemode: bool
    api_version: str | None
    object_type: str  # e.g. "charge", "dispute", "checkout.session"; "" if unknown
    object_id: str
    customer_id: str
    amount: int | None  # minor units
    currency: str  # lower-case ISO 4217 code or ""
    subscription_id: str = ""  # the subscription concerned (itself, an invoice's, ...) or ""


def read_event(data: dict) -> EventFacts:
    """Summarise an event that passed validate_event."""
    obj = _dict(_dict(data.get("data")).get("object"))
    object_type = _str(obj.get("object")) or _object_type_from_event_type(_str(data.get("type")))
    api_version = data.get("api_version")
    return EventFacts(
        stripe_id=data["id"],
        type=data["type"],
        created=_timestamp(data["created"]),
        livemode=data.get("livemode") is True,
        api_version=api_version if isinstance(api_version, str) and api_version else None,
        object_type=object_type,
        object_id=_str(obj.get("id")),
        customer_id=_customer_id(obj, object_type),
        amount=_amount(obj, object_type),
        currency=_object_currency(obj, object_type),
        subscription_id=_subscription_id(obj, object_type),
    )


def _subscription_id(obj: dict, object_type: str) -> str:
    if object_type == "subscription":
        return _str(obj.get("id"))
    if object_type == "invoice":
        return invoice_subscription_id(obj) or ""
    return _id_of(obj.get("subscription")) or ""


def customer_of(obj: dict) -> str:
    """Id of the customer an object concerns ("" if none): its `customer`, or itself."""
    obj = _dict(obj)
    return _customer_id(obj, _str(obj.get("object")))


# --- invoices -------------------------------------------------------------


def invoice_subscription_id(invoice: dict) -> str | None:
    invoice = _dict(invoice)
    # Up to acacia: invoice.subscription (an id, or the subscription when expanded).
    found = _id_of(invoice.get("subscription"))
    # From basil: invoice.parent.subscription_details.subscription.
    found = found or _id_of(_dig(invoice, "parent", "subscription_details", "subscription"))
    if found:
        return found
    # Otherwise the lines say it: line.subscription up to acacia, from basil
    # line.parent.subscription_item_details (or invoice_item_details).subscription.
    for line in _list_data(invoice.get("lines")):
        found = (
            _id_of(line.get("subscription"))
            or _id_of(_dig(line, "parent", "subscription_item_details", "subscription"))
            or _id_of(_dig(line, "parent", "invoice_item_details", "subscription"))
        )
        if found:
            return found
    return None


def invoice_charge_id(invoice: dict) -> str | None:
    # Basil removed invoice.charge; the charge is then only in the
    # InvoicePayment list `payments` (sent when the endpoint expands it).
    invoice = _dict(invoice)
    return _id_of(invoice.get("charge")) or _from_invoice_payments(invoice, "charge")


def invoice_payment_intent_id(invoice: dict) -> str | None:
    # Same move as the charge: invoice.payment_intent -> payments.data[].payment.payment_intent.
    invoice = _dict(invoice)
    return _id_of(invoice.get("payment_intent")) or _from_invoice_payments(invoice, "payment_intent")


def invoice_is_paid(invoice: dict) -> bool | None:
    """True/False when the payload says, None when it cannot tell."""
    invoice = _dict(invoice)
    if isinstance(invoice.get("paid"), bool):  # removed in basil
        return invoice["paid"]
    status = invoice.get("status")
    if status == "paid":
        # Stripe sets status "paid" only once amount_remaining is 0; a partial
        # payment (basil 2025-05-28) leaves the invoice "open".
        return True
    if status in ("draft", "open", "uncollectible", "void"):
        return False
    return None


def invoice_billing_reason(invoice: dict) -> str:
    return _str(_dict(invoice).get("billing_reason"))


def _from_invoice_payments(invoice: dict, field: str) -> str | None:
    payments = _list_data(invoice.get("payments"))
    # Prefer a payment that went through; with partial payments there can be several.
    payments.sort(key=lambda payment: payment.get("status") != "paid")
    for payment in payments:
        found = _id_of(_dig(payment, "payment", field))
        if found:
            return found
    return None


# --- subscriptions --------------------------------------------------------


def subscription_period(subscription: dict) -> tuple[datetime | None, datetime | None]:
    subscription = _dict(subscription)
    # Up to acacia the period is on the subscription; basil moved it to the items.
    start = _timestamp(subscription.get("current_period_start"))
    end = _timestamp(subscription.get("current_period_end"))
    items = _list_data(subscription.get("items"))
    if start is None:
        starts = [_timestamp(item.get("current_period_start")) for item in items]
        start = min((s for s in starts if s is not None), default=None)
    if end is None:
        ends = [_timestamp(item.get("current_period_end")) for item in items]
        end = max((e for e in ends if e is not None), default=None)
    return start, end


def subscription_interval(subscription: dict) -> tuple[str, int] | None:
    lines = _subscription_lines(_dict(subscription))
    return lines[0][1] if lines else None


def subscription_monthly_amount(subscription: dict) -> int | None:
    """The recurring amount per month (minor units), or None if any part is unknown."""
    lines = _subscription_lines(_dict(subscription))
    if not lines or len({currency for *_, currency in lines if currency}) > 1:
        return None
    monthly = Fraction(0)
    for amount, interval, _currency in lines:
        if amount is None or interval is None:
            return None
        name, count = interval
        monthly += Fraction(amount) / (_MONTHS_PER_INTERVAL[name] * count)
    return round(monthly)


def _subscription_lines(subscription: dict) -> list[tuple[int | None, tuple[str, int] | None, str]]:
    """(amount per interval, (interval, count), currency) for each subscription item."""
    lines = []
    for item in _list_data(subscription.get("items")):
        # item.price since 2020; item.plan is the older twin (kept in the
        # payload, sometimes with a null amount when the price has one).
        price, plan = _dict(item.get("price")), _dict(item.get("plan"))
        unit_amount = _int(price.get("unit_amount"))
        if unit_amount is None:
            unit_amount = _int(plan.get("amount"))
        interval = _interval_of(_dict(price.get("recurring"))) or _interval_of(plan)
        currency = _currency(price.get("currency")) or _currency(plan.get("currency"))
        lines.append((_times_quantity(unit_amount, item.get("quantity")), interval, currency))
    plan = _dict(subscription.get("plan"))
    if not lines and plan:  # single-plan subscriptions from before items existed
        amount = _times_quantity(_int(plan.get("amount")), subscription.get("quantity"))
        lines.append((amount, _interval_of(plan), _currency(plan.get("currency"))))
    return lines


def _interval_of(recurring: dict) -> tuple[str, int] | None:
    interval = recurring.get("interval")
    if interval not in _MONTHS_PER_INTERVAL:
        return None
    count = _int(recurring.get("interval_count"))
    return interval, count if count and count > 0 else 1


def _times_quantity(unit_amount: int | None, quantity) -> int | None:
    if unit_amount is None:
        return None
    quantity = _int(quantity)
    return unit_amount * (1 if quantity is None else quantity)


# --- charges --------------------------------------------------------------


def charge_card_fingerprint(charge: dict) -> str:
    charge = _dict(charge)
    # payment_method_details.card since 2019; source (a card) or card on older charges.
    return (
        _str(_dig(charge, "payment_method_details", "card", "fingerprint"))
        or _str(_dig(charge, "source", "fingerprint"))
        or _str(_dig(charge, "card", "fingerprint"))
    )


def charge_failure_code(charge: dict) -> str:
    return _str(_dict(charge).get("failure_code"))


def charge_invoice_id(charge: dict) -> str | None:
    # Removed in basil; there the invoice is found from the invoice's `payments`.
    return _id_of(_dict(charge).get("invoice"))


# --- event facts ----------------------------------------------------------


def _object_type_from_event_type(event_type: str) -> str:
    """"charge.dispute.created" -> "dispute"; used when data.object has no `object`."""
    prefix = event_type.rpartition(".")[0]
    if not _EVENT_TYPE_PREFIX.fullmatch(prefix):
        return ""
    return _OBJECT_TYPE_OF_PREFIX.get(prefix, prefix)


def _customer_id(obj: dict, object_type: str) -> str:
    if object_type == "customer":
        return _str(obj.get("id"))
    return _id_of(obj.get("customer")) or ""


def _amount(obj: dict, object_type: str) -> int | None:
    if object_type == "radar.early_fraud_warning":
        return None
    if object_type == "subscription":
        lines = _subscription_lines(obj)
        amounts = [amount for amount, *_ in lines]
        currencies = {currency for *_, currency in lines if currency}
        # Summing across currencies would be meaningless (a fixture has usd and eur items).
        if not lines or None in amounts or len(currencies) > 1:
            return None
        amount = sum(amounts)
    else:
        fields = {
            "invoice": ("total", "amount_due"),
            "credit_note": ("total", "amount"),
            "checkout.session": ("amount_total",),
            "invoice_payment": ("amount_paid", "amount_requested"),
        }.get(object_type, ("amount",))
        amount = next((_int(obj.get(f)) for f in fields if _int(obj.get(f)) is not None), None)
    return amount if amount is not None and -_MAX_AMOUNT <= amount <= _MAX_AMOUNT else None


def _object_currency(obj: dict, object_type: str) -> str:
    currency = _currency(obj.get("currency"))
    if currency or object_type != "subscription":
        return currency
    currencies = {currency for *_, currency in _subscription_lines(obj) if currency}
    return currencies.pop() if len(currencies) == 1 else ""


# --- small tolerant accessors ---------------------------------------------


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _dig(value, *keys):
    for key in keys:
        value = _dict(value).get(key)
    return value


def _list_data(value) -> list[dict]:
    """The dict entries of a Stripe list object ({"data": [...]}) or of a plain list."""
    if isinstance(value, dict):
        value = value.get("data")
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _str(value) -> str:
    return value if isinstance(value, str) else ""


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _id_of(value) -> str | None:
    """A Stripe reference is an id string, or the object itself when expanded."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _currency(value) -> str:
    code = value.strip().lower() if isinstance(value, str) else ""
    return code if _CURRENCY_CODE.fullmatch(code) else ""


def _timestamp(value) -> datetime | None:
    if _int(value) is None:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
