import pytest

from tests.anomalies.events import T0, anomalies_of, event, minutes, process, reprocess_all, store

pytestmark = pytest.mark.django_db


def anomalies(tenant, detector="duplicate_charge"):
    return anomalies_of(tenant, detector)


def charge(at, customer="cus_A", amount=4900, currency="usd", **kw):
    return event("charge.succeeded", at, customer=customer, amount=amount, currency=currency, **kw)


def test_two_equal_charges_within_five_minutes_fire(acme):
    first, second = charge(T0), charge(T0 + minutes(2))
    store(acme.tenant, first, second)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "high" and anomaly.status == "open"
    assert anomaly.customer_id == "cus_A"
    assert anomaly.title == "2 identical charges of 49.00 USD to cus_A"
    assert anomaly.evidence["event_ids"] == [first["id"], second["id"]]
    assert anomaly.evidence["charge_ids"] == [first["data"]["object"]["id"], second["data"]["object"]["id"]]
    assert anomaly.first_seen_at == anomaly.last_seen_at == T0 + minutes(2)
    assert anomaly.occurrences == 1


@pytest.mark.parametrize(
    "second",
    [
        lambda: charge(T0 + minutes(5, ) + minutes(0.1)),  # just outside the window
        lambda: charge(T0 + minutes(1), amount=4901),  # another amount
        lambda: charge(T0 + minutes(1), currency="eur"),  # another currency
        lambda: charge(T0 + minutes(1), customer="cus_B"),  # another customer
        lambda: charge(T0 + minutes(1), livemode=False),  # test mode never mixes with live
        lambda: event("invoice.paid", T0 + minutes(1), customer="cus_A", total=4900, amount_paid=4900, currency="usd"),
        lambda: event("charge.failed", T0 + minutes(1), customer="cus_A", amount=4900, currency="usd"),
    ],
)
def test_near_misses_stay_quiet(acme, second):
    store(acme.tenant, charge(T0), second())
    process()
    assert anomalies(acme.tenant) == []


def test_the_same_charge_delivered_twice_is_not_a_duplicate(acme):
    first = charge(T0)
    again = dict(first, id="evt_redelivered")  # another event about the same charge id
    store(acme.tenant, first, again)
    process()
    assert anomalies(acme.tenant) == []


def test_out_of_order_and_reprocessing_give_the_same_anomaly(acme, globex):
    a, b, c = charge(T0), charge(T0 + minutes(1)), charge(T0 + minutes(3))
    store(acme.tenant, a, b, c)  # in order
    store(globex.tenant, c, a, b)  # delivered out of order
    process()
    reprocess_all(acme.tenant)
    reprocess_all(acme.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        assert anomaly.occurrences == 2  # two extra charges
        assert sorted(anomaly.evidence["event_ids"]) == sorted([a["id"], b["id"], c["id"]])
        assert anomaly.last_seen_at == T0 + minutes(3)


def test_one_by_one_as_they_arrive(acme):
    a, b, c = charge(T0), charge(T0 + minutes(1)), charge(T0 + minutes(3))
    for payload in (a, b, c):
        store(acme.tenant, payload)
        process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.occurrences == 2
    assert anomaly.title == "3 identical charges of 49.00 USD to cus_A"


def test_new_api_shape_charge_without_invoice_field(acme):
    store(acme.tenant, charge(T0, invoice=None), charge(T0 + minutes(1), invoice=None))
    process()
    assert len(anomalies(acme.tenant)) == 1


def test_missing_customer_is_skipped_not_crashed(acme):
    store(acme.tenant, charge(T0, customer=None), charge(T0 + minutes(1), customer=None))
    process()
    assert anomalies(acme.tenant) == []


def test_other_tenants_charges_are_never_read(acme, globex):
    store(acme.tenant, charge(T0))
    store(globex.tenant, charge(T0 + minutes(1)))
    process()
    assert anomalies(acme.tenant) == [] and anomalies(globex.tenant) == []
