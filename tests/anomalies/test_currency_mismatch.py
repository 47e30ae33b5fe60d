from datetime import timedelta

import pytest

from anomalies.models import DetectorConfig
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, anomalies_of, detector_errors_of, event, process, reprocess_all, store

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def anomalies(tenant, detector="currency_mismatch"):
    return anomalies_of(tenant, detector)


def no_detector_errors(tenant, detector="currency_mismatch"):
    return not detector_errors_of(tenant, detector)


def charge(at, currency="usd", customer="cus_A", amount=4900, **kw):
    return event("charge.succeeded", at, customer=customer, amount=amount, currency=currency, **kw)


def home(customer="cus_A", currency="usd"):
    return [charge(T0 + i * DAY, currency, customer) for i in range(3)]


def test_a_charge_in_another_currency_after_three_home_charges_fires(acme):
    first = home()
    foreign = charge(T0 + 10 * DAY, "eur", amount=5500)
    store(acme.tenant, *first, foreign)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "high" and anomaly.status == "open"
    assert anomaly.fingerprint == "cus_A:eur"
    assert anomaly.customer_id == "cus_A"
    assert anomaly.title == "Charge of 55.00 EUR to cus_A, whose charges so far were in USD"
    assert anomaly.evidence["event_ids"] == [p["id"] for p in first] + [foreign["id"]]
    assert anomaly.evidence["home_currency"] == "usd" and anomaly.evidence["currency"] == "eur"
    assert anomaly.evidence["charge_id"] == foreign["data"]["object"]["id"]
    assert anomaly.first_seen_at == anomaly.last_seen_at == T0 + 10 * DAY
    assert anomaly.occurrences == 1
    assert no_detector_errors(acme.tenant)


def test_each_foreign_charge_is_one_occurrence_and_each_currency_one_anomaly(acme):
    store(acme.tenant, *home(), charge(T0 + 10 * DAY, "eur"), charge(T0 + 11 * DAY, "eur"),
          charge(T0 + 12 * DAY, "gbp"), charge(T0 + 13 * DAY, "usd"))
    process()
    by_fingerprint = {a.fingerprint: a for a in anomalies(acme.tenant)}
    assert sorted(by_fingerprint) == ["cus_A:eur", "cus_A:gbp"]
    assert by_fingerprint["cus_A:eur"].occurrences == 2
    assert by_fingerprint["cus_A:gbp"].occurrences == 1


@pytest.mark.parametrize(
    "history",
    [
        lambda: home()[:2] + [charge(T0 + 10 * DAY, "eur")],  # only two charges before: no home yet
        lambda: [charge(T0, "usd"), charge(T0 + DAY, "eur"), charge(T0 + 2 * DAY, "usd"),
                 charge(T0 + 10 * DAY, "gbp")],  # mixed from the start: no home currency
        lambda: home() + [charge(T0 + 10 * DAY, "usd")],  # same currency
        lambda: home() + [charge(T0 + 10 * DAY, "eur", customer="cus_B")],  # another customer
        lambda: home() + [charge(T0 + 10 * DAY, "eur", livemode=False)],  # test mode
        lambda: home() + [event("charge.failed", T0 + 10 * DAY, customer="cus_A", amount=4900, currency="eur")],
        lambda: home() + [event("charge.refunded", T0 + 10 * DAY, customer="cus_A", amount=4900, currency="eur")],
        lambda: [charge(T0 + i * DAY, "usd", customer=None) for i in range(3)]
        + [charge(T0 + 10 * DAY, "eur", customer=None)],  # guest charges have no home
    ],
)
def test_near_misses_stay_quiet(acme, history):
    store(acme.tenant, *history())
    process()
    assert anomalies(acme.tenant) == []
    assert no_detector_errors(acme.tenant)


def test_test_mode_has_its_own_home_currency(acme):
    store(acme.tenant, *[charge(T0 + i * DAY, livemode=False) for i in range(3)],
          charge(T0 + 10 * DAY, "eur", livemode=False), charge(T0 + 11 * DAY, "eur"))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.livemode is False


def test_the_same_charge_sent_twice_is_one_home_charge(acme):
    first, second, _ = home()
    resent = dict(second, id="evt_resent")
    store(acme.tenant, first, second, resent, charge(T0 + 10 * DAY, "eur"))
    process()
    assert anomalies(acme.tenant) == []  # two distinct charges only


def test_home_charges_override(acme):
    with tenant_scope(acme.tenant):
        DetectorConfig.objects.create(tenant=acme.tenant, detector="currency_mismatch",
                                      thresholds={"home_charges": 2})
    store(acme.tenant, *home()[:2], charge(T0 + 10 * DAY, "eur"))
    process()
    assert len(anomalies(acme.tenant)) == 1


def test_out_of_order_delivery_and_reprocessing_give_the_same_anomaly(acme, globex):
    events = [*home(), charge(T0 + 10 * DAY, "eur"), charge(T0 + 11 * DAY, "eur")]
    store(acme.tenant, *events)
    process()
    # globex receives the foreign charges first, each processed before the home set is complete.
    for payload in reversed(events):
        store(globex.tenant, payload)
        process()
    reprocess_all(acme.tenant)
    reprocess_all(globex.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        assert anomaly.occurrences == 2
        assert anomaly.first_seen_at == T0 + 10 * DAY and anomaly.last_seen_at == T0 + 11 * DAY
        assert anomaly.title == "Charge of 49.00 EUR to cus_A, whose charges so far were in USD"


def test_a_late_earlier_charge_is_ranked_by_its_own_time(acme):
    # The foreign charge came first in time: it is part of a mixed home set, so nothing fires.
    early_eur = charge(T0 - DAY, "eur")
    store(acme.tenant, *home())
    process()
    store(acme.tenant, early_eur)
    process()
    assert anomalies(acme.tenant) == []


def test_new_api_shape_charge_without_invoice(acme):
    store(acme.tenant, *[charge(T0 + i * DAY, invoice=None) for i in range(3)],
          charge(T0 + 10 * DAY, "eur", invoice=None))
    process()
    assert len(anomalies(acme.tenant)) == 1


def test_zero_decimal_currency_title(acme):
    store(acme.tenant, *home(), charge(T0 + 10 * DAY, "jpy", amount=5000))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Charge of 5,000 JPY to cus_A, whose charges so far were in USD"


def test_other_tenants_events_are_never_read(acme, globex):
    store(globex.tenant, *home())
    store(acme.tenant, charge(T0 + 10 * DAY, "eur"))
    process()
    assert anomalies(acme.tenant) == [] and anomalies(globex.tenant) == []
