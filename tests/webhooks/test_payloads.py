"""webhooks.payloads against real Stripe payloads of several API versions.

Pure functions, no database: run with `pytest -p no:django` if need be.
Fixtures: shared/stripe-fixtures beside the repository (see its SOURCES.md).
"""

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from webhooks.payloads import (
    EventFacts,
    NotAStripeEvent,
    charge_card_fingerprint,
    charge_failure_code,
    charge_invoice_id,
    customer_of,
    invoice_billing_reason,
    invoice_charge_id,
    invoice_is_paid,
    invoice_payment_intent_id,
    invoice_subscription_id,
    read_event,
    subscription_interval,
    subscription_monthly_amount,
    subscription_period,
    validate_event,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "stripe-fixtures"
MOCK_EVENTS = FIXTURES / "stripe-ruby-mock-events"
OPENAPI = FIXTURES / "stripe-openapi"
ACACIA, BASIL, CLOVER = "2025-02-24.acacia", "2025-03-31.basil", "2025-09-30.clover"
DAHLIA = ""  # the top level of stripe-openapi/ is 2026-07-29.dahlia
NEW_SHAPE_VERSIONS = [BASIL, CLOVER, DAHLIA]

MOCK_EVENT_FILES = sorted(MOCK_EVENTS.rglob("*.json"))
OPENAPI_FILES = sorted(OPENAPI.rglob("*.json"))


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def openapi_object(version: str, name: str) -> dict:
    return load(OPENAPI / version / f"{name}.json")


def envelope(obj: dict, event_type: str | None = None, **overrides) -> dict:
    event_type = event_type or f"{obj.get('object', 'unknown')}.updated"
    event = {
        "object": "event",
        "id": "evt_test",
        "type": event_type,
        "created": 1700000000,
        "livemode": False,
        "data": {"object": obj},
    }
    event.update(overrides)
    return event


def ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def file_id(path: Path) -> str:
    return str(path.relative_to(FIXTURES))


def test_fixture_folders_are_present():
    assert MOCK_EVENT_FILES, f"no fixtures under {MOCK_EVENTS}"
    assert {p.parent.name for p in OPENAPI_FILES} >= {"stripe-openapi", ACACIA, BASIL, CLOVER}


# --- every stripe-ruby-mock event -----------------------------------------


def assert_sane(facts: EventFacts) -> None:
    assert isinstance(facts.stripe_id, str) and facts.stripe_id
    assert isinstance(facts.type, str) and facts.type
    assert facts.created.tzinfo is not None and facts.created.utcoffset().total_seconds() == 0
    assert isinstance(facts.livemode, bool)
    assert facts.api_version is None or isinstance(facts.api_version, str)
    assert isinstance(facts.object_type, str)
    assert isinstance(facts.object_id, str)
    assert isinstance(facts.customer_id, str)
    assert facts.amount is None or (isinstance(facts.amount, int) and not isinstance(facts.amount, bool))
    assert facts.currency == "" or (len(facts.currency) == 3 and facts.currency.isalpha() and facts.currency.islower())


@pytest.mark.parametrize("path", MOCK_EVENT_FILES, ids=file_id)
def test_mock_event_reads(path):
    data = load(path)
    # All 88 files are true envelopes today; the branch below keeps the test
    # honest if a fragment (no "object": "event") is ever added to the folder.
    if not (isinstance(data, dict) and data.get("object") == "event"):
        with pytest.raises(NotAStripeEvent):
            validate_event(data)
        return
    validate_event(data)
    facts = read_event(data)
    assert_sane(facts)
    assert facts.stripe_id == data["id"] and facts.type == data["type"]
    assert facts.created == ts(data["created"])
    assert facts.object_type  # every type here has a known prefix
    declared = data["data"]["object"].get("object")
    if declared:
        assert facts.object_type == declared


@pytest.mark.parametrize(
    ("name", "object_type", "object_id", "customer_id", "amount", "currency", "api_version"),
    [
        ("charge.succeeded", "charge", "ch_000000000000000000000000", "", 2000, "usd", "2020-08-27"),
        ("charge.updated", "charge", "ch_00000000000000", "cus_00000000000000", 1000, "usd", None),
        ("charge.dispute.funds_withdrawn", "dispute", "dp_00000000000000", "", 25000, "usd", "2017-12-14"),
        # This dispute has no id at all: object_id falls back to "".
        ("charge.dispute.closed", "dispute", "", "", 1000, "usd", None),
        ("charge.refund.updated", "refund", "re_000000000000000000000000", "", 100, "usd", "2020-08-27"),
        ("payment_intent.processing", "payment_intent", "pi_00000000000000", "cus_00000000000000", 900, "eur",
         "2018-02-28"),
        ("invoice.paid", "invoice", "in_000000000000000000000000", "cus_00000000000000", 2000, "usd", "2020-08-27"),
        # An upcoming invoice has no id yet.
        ("invoice.upcoming", "invoice", "", "cus_00000000000000", 1000, "usd", None),
        ("checkout.session.completed", "checkout.session",
         "cs_test_0000000000000000000000000000000000000000000000000000000000", "cus_00000000000000", 3000, "usd",
         "2020-08-27"),
        ("checkout.session.completed.setup_mode", "checkout.session", "cs_00000000000000", "", None, "", None),
        ("customer.subscription.updated", "subscription", "sub_000000000000000000000000", "cus_00000000000000",
         1500, "usd", "2020-08-27"),
        # Two plan-only items in usd and eur: no sum across currencies.
        ("customer.subscription.trial_will_end", "subscription", "su_00000000000000", "cus_00000000000000", None,
         "", None),
        ("customer.created", "customer", "cus_00000000000000", "cus_00000000000000", None, "", "2020-08-27"),
        ("invoiceitem.created", "invoiceitem", "ii_000000000000000000000000", "cus_00000000000000", -1500, "usd",
         "2020-08-27"),
        # data.object is just {"id": "cus_..."}: type inferred from the event type.
        ("account.application.deauthorized", "application", "cus_00000000000000", "", None, "", None),
        ("customer.discount.created", "discount", "", "cus_00000000000000", None, "", None),
    ],
)
def test_mock_event_exact_facts(name, object_type, object_id, customer_id, amount, currency, api_version):
    facts = read_event(load(MOCK_EVENTS / f"{name}.json"))
    assert (facts.object_type, facts.object_id, facts.customer_id) == (object_type, object_id, customer_id)
    assert (facts.amount, facts.currency, facts.api_version, facts.livemode) == (amount, currency, api_version, False)


# --- every stripe-openapi object, wrapped in an envelope --------------------

PLAUSIBLE_EVENT_TYPE = {
    "subscription": "customer.subscription.updated",
    "dispute": "charge.dispute.updated",
    "refund": "charge.refund.updated",
    "invoice_payment": "invoice_payment.paid",
    "checkout.session": "checkout.session.completed",
    "radar.early_fraud_warning": "radar.early_fraud_warning.updated",
}


def plain_int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def expected_amount(obj: dict):
    kind = obj["object"]
    if kind == "subscription":
        total = 0
        for item in obj["items"]["data"]:
            unit = plain_int((item.get("price") or {}).get("unit_amount"))
            unit = unit if unit is not None else plain_int((item.get("plan") or {}).get("amount"))
            if unit is None:
                return None
            total += unit * (item.get("quantity") or 1)
        return total
    fields = {
        "invoice": ["total", "amount_due"],
        "credit_note": ["total", "amount"],
        "checkout.session": ["amount_total"],
        "invoice_payment": ["amount_paid", "amount_requested"],
        "radar.early_fraud_warning": [],
    }.get(kind, ["amount"])
    return next((plain_int(obj.get(f)) for f in fields if plain_int(obj.get(f)) is not None), None)


def expected_currency(obj: dict) -> str:
    raw = obj.get("currency")
    if raw is None and obj["object"] == "subscription":
        raw = obj["items"]["data"][0]["price"]["currency"]
    raw = (raw or "").lower()
    # Stripe's generated examples use the placeholder "currency" (invoice_payment): not a code.
    return raw if len(raw) == 3 and raw.isalpha() else ""


def expected_customer(obj: dict) -> str:
    if obj["object"] == "customer":
        return obj["id"]
    customer = obj.get("customer")
    return (customer.get("id") if isinstance(customer, dict) else customer) or ""


CHECKED_TYPES = {"charge", "invoice", "refund", "dispute", "payment_intent", "subscription", "credit_note",
                 "checkout.session", "invoice_payment", "radar.early_fraud_warning", "customer"}


@pytest.mark.parametrize("path", OPENAPI_FILES, ids=file_id)
def test_openapi_object_in_envelope(path):
    obj = load(path)
    event = envelope(obj, PLAUSIBLE_EVENT_TYPE.get(obj["object"]))
    before = copy.deepcopy(event)
    validate_event(event)
    facts = read_event(event)
    assert event == before  # readers never modify the payload
    assert_sane(facts)
    assert (facts.object_type, facts.object_id) == (obj["object"], obj["id"])
    assert facts.api_version is None
    if obj["object"] in CHECKED_TYPES:
        assert facts.amount == expected_amount(obj)
        assert facts.currency == expected_currency(obj)
        assert facts.customer_id == expected_customer(obj)


@pytest.mark.parametrize("version", [ACACIA, BASIL, CLOVER, DAHLIA])
@pytest.mark.parametrize(
    ("name", "amount", "currency", "customer_id"),
    [
        ("charge", 100, "usd", ""),
        ("refund", 100, "usd", ""),
        ("dispute", 1000, "usd", ""),
        ("payment_intent", 1099, "usd", ""),
        ("invoice", 1000, "usd", "cus_QXg1o8vcGmoR32"),
        ("credit_note", 1690, "usd", "cus_QXg1o8vcGmoR32"),
        ("subscription", 2000, "usd", "cus_QXg1o8vcGmoR32"),  # price.unit_amount; item plan.amount is null
        ("checkout.session", None, "", ""),  # amount_total and currency are null in this example
        ("radar.early_fraud_warning", None, "", ""),
        ("customer", None, "usd", "cus_QXg1o8vcGmoR32"),
    ],
)
def test_openapi_exact_facts(version, name, amount, currency, customer_id):
    facts = read_event(envelope(openapi_object(version, name)))
    assert (facts.amount, facts.currency, facts.customer_id) == (amount, currency, customer_id)


@pytest.mark.parametrize("version", [ACACIA, DAHLIA])
def test_invoice_and_credit_note_amount_prefer_total(version):
    invoice = openapi_object(version, "invoice")
    invoice.update(total=1000, amount_due=800)  # e.g. customer credit balance applied
    assert read_event(envelope(invoice)).amount == 1000
    del invoice["total"]
    assert read_event(envelope(invoice)).amount == 800
    credit_note = openapi_object(version, "credit_note")
    credit_note.update(total=1690, amount=1500)
    assert read_event(envelope(credit_note)).amount == 1690
    credit_note["total"] = None
    assert read_event(envelope(credit_note)).amount == 1500


@pytest.mark.parametrize("version", NEW_SHAPE_VERSIONS)
def test_invoice_payment_amount(version):
    obj = openapi_object(version, "invoice_payment")
    facts = read_event(envelope(obj, "invoice_payment.paid"))
    # amount_paid is null in the example, so amount_requested; currency is the placeholder "currency".
    assert (facts.amount, facts.currency, facts.customer_id) == (1112626247, "", "")
    obj["amount_paid"] = 5000
    assert read_event(envelope(obj, "invoice_payment.paid")).amount == 5000


@pytest.mark.parametrize("version", [ACACIA, BASIL, CLOVER, DAHLIA])
def test_openapi_event_fixture_is_an_envelope_with_null_api_version(version):
    data = openapi_object(version, "event")
    validate_event(data)
    facts = read_event(data)
    assert facts.api_version is None
    assert (facts.stripe_id, facts.object_type, facts.amount, facts.currency) == (
        "evt_1Pgc76B7WZ01zgkWwyRHS12y", "plan", 2000, "usd")
    assert facts.created == datetime(2009, 2, 13, 23, 31, 30, tzinfo=UTC)


# --- invoices: old and new shapes -------------------------------------------


def test_invoice_subscription_id_old_field():
    invoice = openapi_object(ACACIA, "invoice")
    assert invoice_subscription_id(invoice) is None  # the example has subscription: null
    invoice["subscription"] = "sub_old"
    assert invoice_subscription_id(invoice) == "sub_old"
    invoice["subscription"] = {"id": "sub_expanded", "object": "subscription"}
    assert invoice_subscription_id(invoice) == "sub_expanded"


def test_invoice_subscription_id_old_line_field():
    invoice = openapi_object(ACACIA, "invoice")
    invoice["lines"]["data"][0]["subscription"] = "sub_from_line"
    assert invoice_subscription_id(invoice) == "sub_from_line"


@pytest.mark.parametrize("version", [CLOVER, DAHLIA])
def test_invoice_subscription_id_from_parent_in_fixture(version):
    # Stripe's example fills parent.subscription_details.subscription with a placeholder.
    assert invoice_subscription_id(openapi_object(version, "invoice")) == "subscription"


@pytest.mark.parametrize("version", NEW_SHAPE_VERSIONS)
def test_invoice_subscription_id_from_parent(version):
    invoice = openapi_object(version, "invoice")
    invoice.pop("subscription", None)  # stripe-go has no Invoice.Subscription any more
    invoice["parent"] = {"type": "subscription_details", "quote_details": None,
                         "subscription_details": {"metadata": {}, "subscription": "sub_new"}}
    assert invoice_subscription_id(invoice) == "sub_new"
    invoice["parent"]["subscription_details"]["subscription"] = {"id": "sub_new_expanded"}
    assert invoice_subscription_id(invoice) == "sub_new_expanded"


def test_invoice_subscription_id_basil_fixture_and_line_fallback():
    invoice = openapi_object(BASIL, "invoice")
    assert invoice_subscription_id(invoice) is None  # parent is null in the basil example
    invoice["lines"]["data"][0]["parent"] = {
        "type": "subscription_item_details",
        "subscription_item_details": {"subscription": "sub_from_line", "subscription_item": "si_1", "proration": False},
    }
    assert invoice_subscription_id(invoice) == "sub_from_line"


def test_invoice_charge_and_payment_intent_old_fields():
    invoice = openapi_object(ACACIA, "invoice")
    assert (invoice_charge_id(invoice), invoice_payment_intent_id(invoice)) == (None, None)
    invoice["charge"], invoice["payment_intent"] = "ch_old", {"id": "pi_old", "object": "payment_intent"}
    assert (invoice_charge_id(invoice), invoice_payment_intent_id(invoice)) == ("ch_old", "pi_old")


@pytest.mark.parametrize("version", NEW_SHAPE_VERSIONS)
def test_invoice_charge_and_payment_intent_from_payments(version):
    invoice = openapi_object(version, "invoice")
    assert "charge" not in invoice and "payments" not in invoice
    assert (invoice_charge_id(invoice), invoice_payment_intent_id(invoice)) == (None, None)
    invoice["payments"] = {"object": "list", "data": [
        {"object": "invoice_payment", "id": "inpay_failed", "status": "canceled",
         "payment": {"type": "payment_intent", "payment_intent": "pi_failed"}},
        {"object": "invoice_payment", "id": "inpay_paid", "status": "paid",
         "payment": {"type": "charge", "charge": {"id": "ch_new", "object": "charge"}}},
    ]}
    assert invoice_charge_id(invoice) == "ch_new"
    assert invoice_payment_intent_id(invoice) == "pi_failed"


def test_invoice_is_paid_both_shapes():
    acacia = openapi_object(ACACIA, "invoice")
    assert invoice_is_paid(acacia) is False
    acacia["paid"] = True
    assert invoice_is_paid(acacia) is True  # `paid` wins over the draft status in old shapes
    basil = openapi_object(BASIL, "invoice")
    assert "paid" not in basil and invoice_is_paid(basil) is False  # status "draft"
    basil.update(status="paid", amount_paid=1000, amount_remaining=0)
    assert invoice_is_paid(basil) is True
    basil.update(status="open", amount_paid=400, amount_remaining=600)  # a partial payment
    assert invoice_is_paid(basil) is False
    assert invoice_is_paid({"object": "invoice"}) is None
    assert invoice_is_paid(load(MOCK_EVENTS / "invoice.paid.json")["data"]["object"]) is True


def test_invoice_billing_reason():
    assert invoice_billing_reason(load(MOCK_EVENTS / "invoice.created.json")["data"]["object"]) == "subscription_create"
    assert invoice_billing_reason(openapi_object(DAHLIA, "invoice")) == "manual"
    assert invoice_billing_reason({"billing_reason": None}) == ""


# --- subscriptions ----------------------------------------------------------


def test_subscription_period_on_object_acacia():
    sub = openapi_object(ACACIA, "subscription")
    expected = datetime(2009, 2, 13, 23, 31, 30, tzinfo=UTC)  # 1234567890
    assert subscription_period(sub) == (expected, expected)


def test_subscription_period_on_object_2020():
    sub = load(MOCK_EVENTS / "customer.subscription.updated.json")["data"]["object"]
    assert subscription_period(sub) == (ts(1648320105), ts(1650998505))


@pytest.mark.parametrize("version", NEW_SHAPE_VERSIONS)
def test_subscription_period_on_items_basil_and_later(version):
    sub = openapi_object(version, "subscription")
    assert "current_period_start" not in sub
    # Stripe's generated example has start after end; we report what it says.
    assert subscription_period(sub) == (
        datetime(2030, 2, 6, 1, 8, 38, tzinfo=UTC),  # 1896570518
        datetime(2000, 12, 8, 15, 2, 53, tzinfo=UTC),  # 976287773
    )


def test_subscription_period_takes_min_start_and_max_end_across_items():
    sub = openapi_object(BASIL, "subscription")
    first = sub["items"]["data"][0]
    first.update(current_period_start=1740000000, current_period_end=1742000000)
    second = copy.deepcopy(first)
    second.update(id="si_2", current_period_start=1739000000, current_period_end=1745000000)
    sub["items"]["data"].append(second)
    assert subscription_period(sub) == (ts(1739000000), ts(1745000000))


def test_subscription_interval_prefers_price_recurring():
    # The item's plan says interval_count 797691627 (generated junk); price.recurring says 1.
    assert subscription_interval(openapi_object(DAHLIA, "subscription")) == ("month", 1)
    old = load(MOCK_EVENTS / "customer.subscription.trial_will_end.json")["data"]["object"]
    assert subscription_interval(old) == ("month", 1)  # item plans only, no price
    assert subscription_interval({"plan": {"interval": "year", "interval_count": 2}}) == ("year", 2)
    assert subscription_interval({"items": {"data": []}}) is None


def subscription_with(unit_amount, interval, interval_count=1, quantity=1):
    price = {"object": "price", "unit_amount": unit_amount, "currency": "usd",
             "recurring": {"interval": interval, "interval_count": interval_count}}
    item = {"object": "subscription_item", "price": price, "quantity": quantity}
    return {"object": "subscription", "id": "sub_1", "customer": "cus_1", "items": {"object": "list", "data": [item]}}


@pytest.mark.parametrize(
    ("unit_amount", "interval", "interval_count", "quantity", "monthly"),
    [
        (120000, "year", 1, 1, 10000),
        (1000, "week", 1, 1, 4333),  # 1000 * 52 / 12 = 4333.3
        (2000, "month", 1, 3, 6000),
        (3000, "month", 3, 1, 1000),  # quarterly
        (100, "day", 1, 1, 3042),  # 100 * 365 / 12 = 3041.7
        (240000, "year", 2, 1, 10000),
    ],
)
def test_subscription_monthly_amount(unit_amount, interval, interval_count, quantity, monthly):
    sub = subscription_with(unit_amount, interval, interval_count, quantity)
    assert subscription_monthly_amount(sub) == monthly
    assert read_event(envelope(sub, "customer.subscription.updated")).amount == unit_amount * quantity


def test_subscription_monthly_amount_unknown_parts():
    assert subscription_monthly_amount(subscription_with(None, "month")) is None  # tiered price
    assert subscription_monthly_amount(subscription_with(1000, "fortnight")) is None
    mixed = load(MOCK_EVENTS / "customer.subscription.trial_will_end.json")["data"]["object"]
    assert subscription_monthly_amount(mixed) is None  # usd and eur items
    assert subscription_monthly_amount(openapi_object(DAHLIA, "subscription")) == 2000


def test_subscription_amount_old_top_level_plan():
    sub = {"object": "subscription", "id": "sub_1", "quantity": 2,
           "plan": {"object": "plan", "amount": 500, "currency": "EUR", "interval": "month", "interval_count": 1}}
    facts = read_event(envelope(sub, "customer.subscription.created"))
    assert (facts.amount, facts.currency) == (1000, "eur")
    assert subscription_monthly_amount(sub) == 1000


# --- charges ----------------------------------------------------------------


def test_charge_readers_both_shapes():
    acacia = openapi_object(ACACIA, "charge")
    assert charge_card_fingerprint(acacia) == "AOB934RVNwzk6xtn"
    assert charge_invoice_id(acacia) is None
    acacia["invoice"] = {"id": "in_expanded", "object": "invoice"}
    assert charge_invoice_id(acacia) == "in_expanded"
    basil = openapi_object(BASIL, "charge")
    assert "invoice" not in basil and charge_invoice_id(basil) is None
    failed = load(MOCK_EVENTS / "charge.failed.json")["data"]["object"]
    assert charge_failure_code(failed) == "card_declined"
    assert charge_failure_code(basil) == ""
    # An older charge with only source.fingerprint (no payment_method_details).
    updated = load(MOCK_EVENTS / "charge.updated.json")["data"]["object"]
    assert charge_card_fingerprint(updated) == "wXWJT135mEK107G8"
    assert charge_invoice_id(updated) == "in_00000000000000"
    assert charge_card_fingerprint({"card": {"fingerprint": "fp_card"}}) == "fp_card"
    assert charge_card_fingerprint({"source": "src_1"}) == ""


# --- envelope details -------------------------------------------------------


def test_customer_as_expanded_object():
    charge = openapi_object(DAHLIA, "charge")
    charge["customer"] = {"id": "cus_expanded", "object": "customer", "email": "customer@example.com"}
    assert read_event(envelope(charge, "charge.succeeded")).customer_id == "cus_expanded"
    assert customer_of(charge) == "cus_expanded"
    assert customer_of({"object": "customer", "id": "cus_self"}) == "cus_self"
    assert customer_of({"object": "charge", "customer": {"deleted": True}}) == ""


@pytest.mark.parametrize(
    ("event_type", "object_type"),
    [
        ("charge.succeeded", "charge"),
        ("charge.dispute.created", "dispute"),
        ("charge.refund.updated", "refund"),
        ("customer.subscription.updated", "subscription"),
        ("radar.early_fraud_warning.created", "radar.early_fraud_warning"),
        ("invoice_payment.paid", "invoice_payment"),
        ("checkout.session.completed", "checkout.session"),
        ("customer.created", "customer"),
        ("ping", ""),
        ("Not A Type.x", ""),
    ],
)
def test_object_type_inferred_when_data_object_has_no_object_field(event_type, object_type):
    charge = openapi_object(DAHLIA, "charge")
    del charge["object"]
    facts = read_event(envelope(charge, event_type))
    assert facts.object_type == object_type
    assert facts.object_id == "ch_1PgafuB7WZ01zgkWXYmPNZs8"
    if object_type == "charge":
        assert (facts.amount, facts.currency) == (100, "usd")


def test_missing_livemode_is_false_and_null_api_version_is_none():
    event = envelope(openapi_object(DAHLIA, "charge"), "charge.succeeded", api_version=None)
    del event["livemode"]
    validate_event(event)
    facts = read_event(event)
    assert (facts.livemode, facts.api_version) == (False, None)
    assert facts.created == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    live = envelope(openapi_object(DAHLIA, "charge"), livemode=True, api_version="2026-07-29.dahlia")
    assert (read_event(live).livemode, read_event(live).api_version) == (True, "2026-07-29.dahlia")


# --- validate_event rejections ----------------------------------------------


def valid_event() -> dict:
    return envelope({"object": "charge", "id": "ch_1", "amount": 100, "currency": "usd"}, "charge.succeeded")


def without(key):
    def change(event):
        del event[key]
    return change


def setting(key, value):
    def change(event):
        event[key] = value
    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (setting("object", "invoice"), "not a Stripe event: 'object' is not 'event'"),
        (without("object"), "not a Stripe event: 'object' is not 'event'"),
        (without("id"), "not a Stripe event: 'id' is missing or not a string"),
        (setting("id", 123), "not a Stripe event: 'id' is missing or not a string"),
        (setting("id", ""), "not a Stripe event: 'id' is empty"),
        (setting("type", ""), "not a Stripe event: 'type' is empty"),
        (setting("type", None), "not a Stripe event: 'type' is missing or not a string"),
        (setting("created", "1700000000"), "not a Stripe event: 'created' is missing or not an integer"),
        (setting("created", True), "not a Stripe event: 'created' is missing or not an integer"),
        (setting("created", 1700000000.5), "not a Stripe event: 'created' is missing or not an integer"),
        (setting("created", 10**20), "not a Stripe event: 'created' is out of range"),
        (without("data"), "not a Stripe event: 'data' is missing or not an object"),
        (setting("data", []), "not a Stripe event: 'data' is missing or not an object"),
        (setting("data", {"object": "ch_1"}), "not a Stripe event: 'data.object' is missing or not an object"),
        (setting("data", {}), "not a Stripe event: 'data.object' is missing or not an object"),
        (setting("livemode", "false"), "not a Stripe event: 'livemode' is not a boolean"),
        (setting("livemode", None), "not a Stripe event: 'livemode' is not a boolean"),
    ],
)
def test_validate_event_rejects(change, message):
    event = valid_event()
    change(event)
    with pytest.raises(NotAStripeEvent) as excinfo:
        validate_event(event)
    assert str(excinfo.value) == message
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([valid_event()], "not a Stripe event: expected a JSON object, got list"),
        ("evt_1", "not a Stripe event: expected a JSON object, got str"),
        (None, "not a Stripe event: expected a JSON object, got NoneType"),
    ],
)
def test_validate_event_rejects_non_objects(data, message):
    with pytest.raises(NotAStripeEvent) as excinfo:
        validate_event(data)
    assert str(excinfo.value) == message


def test_validate_event_names_the_first_failing_field():
    with pytest.raises(NotAStripeEvent) as excinfo:
        validate_event({"object": "event", "type": "", "created": "x"})
    assert str(excinfo.value) == "not a Stripe event: 'id' is missing or not a string"


# --- odd nested content never raises ---------------------------------------

ODD_VALUES = [None, True, 0, -1, 10**30, "", "x", [], [None, 1, "a"], {}, {"data": "x"}, {"data": [None, {}]},
              {"id": None}, {"id": 5}]
READERS = [customer_of, invoice_subscription_id, invoice_charge_id, invoice_payment_intent_id, invoice_is_paid,
           invoice_billing_reason, subscription_period, subscription_interval, subscription_monthly_amount,
           charge_card_fingerprint, charge_failure_code, charge_invoice_id]
ODD_FIELDS = ["customer", "subscription", "parent", "lines", "payments", "charge", "payment_intent", "paid", "status",
              "items", "plan", "quantity", "current_period_start", "current_period_end", "payment_method_details",
              "source", "card", "invoice", "amount", "total", "amount_due", "amount_total", "amount_paid",
              "amount_requested", "currency", "failure_code", "billing_reason", "id", "object"]


@pytest.mark.parametrize("odd", ODD_VALUES, ids=repr)
@pytest.mark.parametrize("object_type", ["charge", "invoice", "subscription", "invoice_payment", "customer", None])
def test_odd_nested_values_never_raise(object_type, odd):
    obj = {field: copy.deepcopy(odd) for field in ODD_FIELDS}
    if object_type:
        obj["object"] = object_type
    items_of_odd = {"object": "subscription", "items": {"data": [{field: odd for field in ODD_FIELDS}]}}
    for payload in (obj, items_of_odd, odd):
        for reader in READERS:
            reader(payload)
    facts = read_event(envelope(obj, "customer.subscription.updated"))
    assert_sane(facts)
    assert facts.amount is None or -(2**63) < facts.amount < 2**63
