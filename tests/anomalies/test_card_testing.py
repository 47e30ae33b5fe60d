from datetime import timedelta

import pytest

from anomalies.models import DetectorConfig
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, anomalies_of, detector_errors_of, event, minutes, process, reprocess_all, store

pytestmark = pytest.mark.django_db

DETECTOR = "card_testing"


def anomalies(tenant):
    return anomalies_of(tenant, DETECTOR)


def fingerprints(tenant):
    return sorted(a.fingerprint for a in anomalies(tenant))


def detector_errors(tenant):
    return detector_errors_of(tenant, DETECTOR)


def failed(at, customer=None, card="fp_A", old_shape=False, **kw):
    """A failed card charge; the card's fingerprint where the API version puts it."""
    card_fields = {"brand": "visa", "last4": "0002", "fingerprint": card}
    if old_shape:  # before payment_method_details (2019): the card is the charge's `source`
        kw.update(payment_method_details=None, source={"object": "card", "id": "card_1", **card_fields})
    else:
        kw.update(payment_method_details={"type": "card", "card": card_fields} if card else None)
    return event("charge.failed", at, customer=customer, **kw)


def seconds(n):
    return timedelta(seconds=n)


def set_thresholds(tenant, **values):
    with tenant_scope(tenant):
        DetectorConfig.objects.create(tenant=tenant, detector=DETECTOR, thresholds=values)


# --- one customer ---------------------------------------------------------------


def test_five_failures_of_one_customer_on_different_cards_fire(acme):
    events = [failed(T0 + minutes(2 * i), customer="cus_A", card=f"fp_{i}") for i in range(5)]
    store(acme.tenant, *events)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "customer:cus_A"
    assert anomaly.severity == "critical" and anomaly.status == "open"
    assert anomaly.customer_id == "cus_A"
    assert anomaly.title == "Card testing: 5 failed charges for cus_A in 10 min"
    assert anomaly.evidence["event_ids"] == [e["id"] for e in events]
    assert anomaly.evidence["charge_ids"] == [e["data"]["object"]["id"] for e in events]
    assert anomaly.evidence["rule"] == "customer" and anomaly.evidence["failures"] == 5
    assert anomaly.first_seen_at == anomaly.last_seen_at == T0 + minutes(8)
    assert anomaly.occurrences == 1
    assert "Customer cus_A had 5 failed charges" in anomaly.summary
    assert detector_errors(acme.tenant) == []


def test_same_customer_same_card_is_one_anomaly_not_two(acme):
    store(acme.tenant, *[failed(T0 + minutes(i), customer="cus_A", card="fp_A") for i in range(6)])
    process()
    assert fingerprints(acme.tenant) == ["customer:cus_A"]


# --- one card --------------------------------------------------------------------


def test_five_guest_failures_on_one_card_fire(acme):
    events = [failed(T0 + minutes(i), card="fp_X") for i in range(5)]
    store(acme.tenant, *events)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "card:fp_X" and anomaly.severity == "critical"
    assert anomaly.title == "Card testing: 5 failed charges on card fp_X in 10 min"
    assert anomaly.customer_id == ""
    assert anomaly.evidence["card_fingerprint"] == "fp_X" and anomaly.evidence["distinct_cards"] == 1
    assert "no customer on the charges" in anomaly.summary


def test_one_card_across_customers_fires_as_the_card(acme):
    store(acme.tenant, *[failed(T0 + minutes(i), customer=f"cus_{i}", card="fp_X") for i in range(5)])
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "card:fp_X" and anomaly.evidence["customers"] == [f"cus_{i}" for i in range(5)]


def test_old_charge_shape_card_in_source(acme):
    store(acme.tenant, *[failed(T0 + minutes(i), card="fp_OLD", old_shape=True) for i in range(3)],
          *[failed(T0 + minutes(3 + i), card="fp_OLD", invoice=None) for i in range(2)])  # basil: no invoice
    process()
    assert fingerprints(acme.tenant) == ["card:fp_OLD"]


# --- the tenant --------------------------------------------------------------------


def tenant_burst(failures, cards, start=T0, span=minutes(9), **kw):
    step = span / max(failures - 1, 1)
    return [failed(start + step * i, card=f"fp_{i % cards}", **kw) for i in range(failures)]


def test_twenty_failures_on_ten_cards_fire_tenant_wide(acme):
    events = tenant_burst(20, 10)
    store(acme.tenant, *events)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "tenant" and anomaly.severity == "critical"
    assert anomaly.title == "Card testing: 20 failed charges on 10 cards in 10 min"
    assert anomaly.evidence["distinct_cards"] == 10
    assert anomaly.evidence["event_ids"] == [e["id"] for e in events]
    assert anomaly.occurrences == 1


@pytest.mark.parametrize("failures,cards", [(19, 10), (20, 9)])
def test_just_under_the_tenant_rule(acme, failures, cards):
    store(acme.tenant, *tenant_burst(failures, cards))  # no card has 5 failures either
    process()
    assert anomalies(acme.tenant) == []


def test_cardless_failures_count_as_failures_not_as_cards(acme):
    # 19 failures on 10 cards and one without a card (e.g. a bank debit): 20 failures on 10 cards.
    store(acme.tenant, *tenant_burst(19, 10), failed(T0 + minutes(9), card=None))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Card testing: 20 failed charges on 10 cards in 10 min"


def test_tenant_rule_with_9_cards_plus_cardless_failures_stays_quiet(acme):
    store(acme.tenant, *tenant_burst(18, 9), *[failed(T0 + minutes(5), card=None) for _ in range(4)])
    process()
    assert anomalies(acme.tenant) == []


# --- near misses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fifth",
    [
        lambda: None,  # four failures only
        lambda: failed(T0 + minutes(10), customer="cus_A", card="fp_A"),  # the first is then out of the window
        lambda: failed(T0 + minutes(4), customer="cus_B", card="fp_B"),  # another customer and card
        lambda: failed(T0 + minutes(4), customer="cus_A", card="fp_A", livemode=False),  # test mode
        lambda: event("charge.succeeded", T0 + minutes(4), customer="cus_A", amount=100, currency="usd"),
    ],
)
def test_near_misses_stay_quiet(acme, fifth):
    payloads = [failed(T0 + minutes(i), customer="cus_A", card="fp_A") for i in range(4)]
    extra = fifth()
    store(acme.tenant, *payloads, *([extra] if extra else []))
    process()
    assert anomalies(acme.tenant) == []


def test_the_same_charge_delivered_twice_is_one_attempt(acme):
    payloads = [failed(T0 + minutes(i), customer="cus_A") for i in range(4)]
    again = dict(payloads[-1], id="evt_redelivered")
    store(acme.tenant, *payloads, again)
    process()
    assert anomalies(acme.tenant) == []


# --- order, duplicates, reprocessing -------------------------------------------------------


def test_reverse_arrival_one_by_one_finds_the_same_burst(acme, globex):
    events = [failed(T0 + minutes(i), customer="cus_A", card=f"fp_{i}") for i in range(5)]
    for payload in events:  # in order
        store(acme.tenant, payload)
        process()
    for payload in reversed(events):  # newest first: each one alone sees no burst until the last
        store(globex.tenant, payload)
        process()
    reprocess_all(globex.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        assert anomaly.fingerprint == "customer:cus_A"
        assert anomaly.occurrences == 1
        assert anomaly.last_seen_at == T0 + minutes(4)
        assert anomaly.title == "Card testing: 5 failed charges for cus_A in 10 min"


def test_long_attack_counts_once_per_window_slot(acme, globex):
    # Two guest failures a minute on one card from 12:00 to 12:29: slots 12:00, 12:10 and 12:20.
    events = [failed(T0 + seconds(30 * i), card="fp_X") for i in range(60)]
    store(acme.tenant, *events)
    store(globex.tenant, *events[::-1])
    process()
    reprocess_all(acme.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        assert anomaly.fingerprint == "card:fp_X"
        assert anomaly.occurrences == 3
        # Each slot is described by its first burst window: 12:02, 12:10, 12:20.
        assert anomaly.first_seen_at == T0 + minutes(2)
        assert anomaly.last_seen_at == T0 + minutes(20)
        assert anomaly.title == "Card testing: 20 failed charges on card fp_X in 10 min"


def test_threshold_overrides(acme):
    set_thresholds(acme.tenant, min_failures=3, window_minutes=5, tenant_failures=6, tenant_distinct_cards=6)
    store(acme.tenant, *[failed(T0 + minutes(i), customer="cus_A", card=f"fp_{i}") for i in range(3)])
    store(acme.tenant, *[failed(T0 + timedelta(hours=1) + minutes(i * 0.5), card=f"fp_t{i}") for i in range(6)])
    process()
    assert fingerprints(acme.tenant) == ["customer:cus_A", "tenant"]
    [tenant_wide] = [a for a in anomalies(acme.tenant) if a.fingerprint == "tenant"]
    assert tenant_wide.title == "Card testing: 6 failed charges on 6 cards in 5 min"


def test_other_tenants_failures_are_never_read(acme, globex):
    store(acme.tenant, *[failed(T0 + minutes(i), customer="cus_A", card="fp_A") for i in range(3)])
    store(globex.tenant, *[failed(T0 + minutes(i), customer="cus_A", card="fp_A") for i in range(3, 5)])
    store(globex.tenant, *tenant_burst(19, 19, start=T0 + timedelta(hours=1)))
    store(acme.tenant, failed(T0 + timedelta(hours=1, minutes=5), card="fp_other"))
    process()
    assert anomalies(acme.tenant) == [] and anomalies(globex.tenant) == []


def test_long_attack_arriving_newest_first_one_by_one_has_the_same_occurrences(acme):
    events = [failed(T0 + seconds(30 * i), card="fp_X") for i in range(60)]
    for payload in reversed(events):
        store(acme.tenant, payload)
        process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "card:fp_X" and anomaly.occurrences == 3
    # Seen newest first, a slot is described by the part of it already stored, still in the same slot.
    assert T0 + minutes(2) <= anomaly.first_seen_at < T0 + minutes(10)


def test_a_storm_beyond_the_read_bounds_is_still_found(acme, monkeypatch):
    from anomalies.detectors import card_testing

    # Reads bounded to 8 rows around each event (2000 and 500 in production).
    monkeypatch.setattr(card_testing, "MAX_ROWS", 8)
    monkeypatch.setattr(card_testing, "MAX_PAYLOADS", 8)
    set_thresholds(acme.tenant, tenant_failures=6, tenant_distinct_cards=4)
    storm = [failed(T0 + seconds(10 * i), customer="cus_A" if i % 2 else None, card=f"fp_{i % 12}")
             for i in range(40)]
    storm += [failed(T0 + seconds(201 + i), card="fp_same") for i in range(5)]
    store(acme.tenant, *storm)
    process()
    assert fingerprints(acme.tenant) == ["card:fp_same", "customer:cus_A", "tenant"]
    assert detector_errors(acme.tenant) == []


def test_odd_payloads_are_skipped_not_crashed(acme):
    odd = [
        event("charge.failed", T0, payment_method_details="card", source=["not", "a", "card"]),
        event("charge.failed", T0 + seconds(1), payment_method_details={"card": None}, customer={"id": "cus_X"}),
        event("charge.failed", T0 + seconds(2), id=None),
    ]
    store(acme.tenant, *odd, *[failed(T0 + seconds(3 + i), card="fp_X") for i in range(3)])
    process()
    assert detector_errors(acme.tenant) == []
    assert anomalies(acme.tenant) == []
