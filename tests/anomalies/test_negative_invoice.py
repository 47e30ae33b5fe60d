import pytest

from tests.anomalies.events import T0, anomalies_of, detector_errors_of, event, minutes, process, reprocess_all, store

pytestmark = pytest.mark.django_db


def anomalies(tenant, detector="negative_invoice"):
    return anomalies_of(tenant, detector)


def no_detector_errors(tenant, detector="negative_invoice"):
    return not detector_errors_of(tenant, detector)


def invoice(event_type, at, invoice_id="in_NEG", total=-1500, currency="usd", customer="cus_A", **kw):
    payload = event(event_type, at, customer=customer, total=total, currency=currency, **kw)
    payload["data"]["object"]["id"] = invoice_id
    return payload


def test_finalized_negative_invoice_fires(acme):
    finalized = invoice("invoice.finalized", T0)
    store(acme.tenant, finalized)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "medium" and anomaly.status == "open"
    assert anomaly.fingerprint == "in_NEG"
    assert anomaly.customer_id == "cus_A"
    assert anomaly.title == "Invoice in_NEG finalized with a negative total of -15.00 USD"
    assert "credit balance" in anomaly.summary
    assert anomaly.evidence["event_ids"] == [finalized["id"]]
    assert anomaly.evidence["total"] == -1500 and anomaly.evidence["currency"] == "usd"
    assert anomaly.first_seen_at == anomaly.last_seen_at == T0
    assert anomaly.occurrences == 1
    assert no_detector_errors(acme.tenant)


def test_finalized_and_paid_of_one_invoice_are_one_occurrence(acme):
    events = [
        invoice("invoice.finalized", T0),
        invoice("invoice.paid", T0 + minutes(60)),
        invoice("invoice.payment_succeeded", T0 + minutes(60)),
    ]
    store(acme.tenant, *events)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.occurrences == 1
    assert anomaly.first_seen_at == T0


def test_two_negative_invoices_are_two_anomalies(acme):
    store(acme.tenant, invoice("invoice.paid", T0, "in_1"), invoice("invoice.paid", T0 + minutes(1), "in_2"))
    process()
    assert sorted(a.fingerprint for a in anomalies(acme.tenant)) == ["in_1", "in_2"]


@pytest.mark.parametrize(
    "payload",
    [
        lambda: invoice("invoice.finalized", T0, total=0),  # zero is not negative
        lambda: invoice("invoice.paid", T0, total=1500),
        lambda: invoice("invoice.created", T0),  # a draft can still change
        lambda: invoice("invoice.updated", T0),
        lambda: invoice("invoice.payment_failed", T0),
        lambda: invoice("invoice.finalized", T0, livemode=False),  # stays in test mode (checked below)
    ],
)
def test_near_misses_stay_quiet(acme, payload):
    store(acme.tenant, payload())
    process()
    assert [a for a in anomalies(acme.tenant) if a.livemode] == []


def test_test_mode_is_its_own_world(acme):
    store(acme.tenant, invoice("invoice.finalized", T0, livemode=False))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.livemode is False


def test_out_of_order_duplicates_and_reprocessing(acme, globex):
    finalized, paid = invoice("invoice.finalized", T0), invoice("invoice.paid", T0 + minutes(30))
    again = dict(paid, id="evt_redelivered")
    store(acme.tenant, finalized, paid, again)
    store(globex.tenant, again, paid, finalized)
    process()
    reprocess_all(acme.tenant)
    reprocess_all(globex.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        assert anomaly.occurrences == 1
        assert sorted(anomaly.evidence["event_ids"]) == sorted([finalized["id"], paid["id"], again["id"]])


def test_new_api_shape(acme):
    # basil: no paid / subscription / charge on the invoice; the subscription is under parent.
    payload = invoice(
        "invoice.paid", T0, paid=None, subscription=None, charge=None, payment_intent=None,
        parent={"type": "subscription_details", "subscription_details": {"subscription": "sub_NEW"}},
    )
    payload["api_version"] = "2025-03-31.basil"
    store(acme.tenant, payload)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["subscription_id"] == "sub_NEW"
    assert anomaly.title == "Invoice in_NEG paid with a negative total of -15.00 USD"


def test_zero_decimal_currency(acme):
    store(acme.tenant, invoice("invoice.finalized", T0, total=-500, currency="jpy"))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Invoice in_NEG finalized with a negative total of -500 JPY"


def test_missing_total_is_skipped_not_crashed(acme):
    store(acme.tenant, invoice("invoice.finalized", T0, total=None, amount_due=None))
    process()
    assert anomalies(acme.tenant) == []
    assert no_detector_errors(acme.tenant)


def test_other_tenants_events_are_never_read(acme, globex):
    store(acme.tenant, invoice("invoice.finalized", T0))
    store(globex.tenant, invoice("invoice.paid", T0 + minutes(5)))
    process()
    [mine] = anomalies(acme.tenant)
    [theirs] = anomalies(globex.tenant)
    assert mine.evidence["event_ids"] != theirs.evidence["event_ids"]
    assert len(mine.evidence["event_ids"]) == len(theirs.evidence["event_ids"]) == 1
