import math
import random
from datetime import timedelta
from fractions import Fraction

import pytest

from anomalies.detectors.charge_failure_spike import binomial_upper_tail
from anomalies.models import DetectorConfig
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, anomalies_of, detector_errors_of, event, minutes, process, reprocess_all, store

pytestmark = pytest.mark.django_db

DETECTOR = "charge_failure_spike"


def anomalies(tenant):
    return anomalies_of(tenant, DETECTOR)


def detector_errors(tenant):
    return detector_errors_of(tenant, DETECTOR)


def failed(at, code="card_declined", **kw):
    return event("charge.failed", at, failure_code=code, **kw)


def succeeded(at, **kw):
    return event("charge.succeeded", at, **kw)


def hour(failures, successes, end=T0, codes=("card_declined",), **kw):
    """`failures` failed and `successes` succeeded charges spread over the 50 minutes up to `end`."""
    total = failures + successes
    times = [end - minutes(50) + minutes(50) * i / max(total - 1, 1) for i in range(total)]
    # Failures last, so the window ending at the last failure holds every charge.
    return [succeeded(at, **kw) for at in times[:successes]] + [
        failed(at, code=codes[i % len(codes)], **kw) for i, at in enumerate(times[successes:])
    ]


def history(charges, failures, end=T0 - minutes(61), days=7):
    """A week of ordinary charges before the window, `failures` of them failed."""
    step = timedelta(days=days) / (charges + 1)
    return [
        (failed if i < failures else succeeded)(end - step * (i + 1), code="insufficient_funds")
        for i in range(charges)
    ]


def set_thresholds(tenant, **values):
    with tenant_scope(tenant):
        DetectorConfig.objects.create(tenant=tenant, detector=DETECTOR, thresholds=values)


# --- the tail probability ------------------------------------------------------


@pytest.mark.parametrize("k,n,p", [(5, 30, 0.05), (6, 20, 0.05), (1, 1, 0.5), (3, 5, 0.5), (0, 7, 0.2),
                                   (20, 200, 0.0045), (80, 1000, 0.05), (9, 8, 0.3)])
def test_binomial_tail_is_exact(k, n, p):
    exact = sum(math.comb(n, i) * Fraction(p) ** i * (1 - Fraction(p)) ** (n - i) for i in range(k, n + 1))
    assert binomial_upper_tail(k, n, p) == pytest.approx(float(exact), rel=1e-9, abs=1e-300)


def test_binomial_tail_is_fast_at_high_volume():
    assert binomial_upper_tail(1000, 20000, 0.03) < 1e-40
    assert binomial_upper_tail(600, 20000, 0.03) == pytest.approx(0.5, abs=0.02)


# --- firing --------------------------------------------------------------------


def test_failure_spike_fires_with_the_numbers(acme):
    events = hour(6, 14, codes=("card_declined", "card_declined", "expired_card"))
    store(acme.tenant, *events)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "high" and anomaly.status == "open"
    assert anomaly.fingerprint == "tenant" and anomaly.customer_id == ""
    assert anomaly.title == "30% of charges failed in 60 min (6 of 20)"
    failures = [e["id"] for e in events if e["type"] == "charge.failed"]
    assert anomaly.evidence["event_ids"] == failures
    p = binomial_upper_tail(6, 20, 1 / 20)  # no history: the prior's 5%
    assert anomaly.evidence["p_value"] == pytest.approx(p) and p < 0.001
    assert anomaly.evidence["failures"] == 6 and anomaly.evidence["charges"] == 20
    assert anomaly.evidence["baseline_rate"] == 0.05
    assert anomaly.evidence["failure_codes"] == [["card_declined", 4], ["expired_card", 2]]
    assert "card_declined ×4, expired_card ×2" in anomaly.summary
    assert "6 of 20 charges failed" in anomaly.summary and "usual 5.0%" in anomaly.summary
    assert anomaly.last_seen_at == T0
    assert anomaly.occurrences == 1  # one clock hour
    assert detector_errors(acme.tenant) == []


def test_critical_from_forty_percent(acme):
    store(acme.tenant, *hour(8, 12))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "critical"
    assert anomaly.title == "40% of charges failed in 60 min (8 of 20)"


def test_one_anomaly_counted_once_per_clock_hour(acme):
    # A spike lasting from 12:58 to 13:20: two clock hours, two occurrences, one anomaly.
    events = hour(6, 14, end=T0 + minutes(58)) + [failed(T0 + minutes(60 + m)) for m in range(1, 21)]
    store(acme.tenant, *events)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.occurrences == 2
    # Each hour is described by its first finding; later ones in the same hour add nothing.
    assert anomaly.first_seen_at == T0 + minutes(58) and anomaly.last_seen_at == T0 + minutes(61)
    assert anomaly.title == "33% of charges failed in 60 min (7 of 21)"


def test_spike_against_a_clean_history(acme):
    store(acme.tenant, *history(200, 0), *hour(6, 24))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["baseline_charges"] == 200 and anomaly.evidence["baseline_failures"] == 0
    assert anomaly.evidence["baseline_rate"] == round(1 / 220, 4)
    assert anomaly.title == "20% of charges failed in 60 min (6 of 30)"


# --- near misses ---------------------------------------------------------------


def test_ordinary_fluctuation_against_the_tenants_own_rate_stays_quiet(acme):
    # The tenant's failures run at ~11%: 6 of 30 (20%) in an hour is not unusual (p ≈ 0.12).
    store(acme.tenant, *history(200, 24), *hour(6, 24))
    process()
    assert anomalies(acme.tenant) == []


def test_low_volume_without_history_stays_quiet(acme):
    # 5 of 30 is 17%, but against the prior's 5% that is chance (p ≈ 0.016).
    store(acme.tenant, *hour(5, 25))
    process()
    assert anomalies(acme.tenant) == []


def test_four_failures_are_not_enough(acme):
    store(acme.tenant, *hour(4, 2))  # 67%, but under min_failures
    process()
    assert anomalies(acme.tenant) == []


def test_just_under_the_failure_rate(acme):
    # A clean history makes any jump significant, so only the rate decides: 5/34 < 15% <= 5/33.
    store(acme.tenant, *history(200, 0), *hour(5, 29))
    process()
    assert anomalies(acme.tenant) == []
    store(acme.tenant, *history(200, 0, end=T0 + timedelta(days=30) - minutes(61)),
          *hour(5, 28, end=T0 + timedelta(days=30)))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "15% of charges failed in 60 min (5 of 33)"


def test_failures_outside_the_window_do_not_count(acme):
    # Exactly 60 minutes before the last failure is outside the (end - 60 min, end] window.
    events = [failed(T0 - minutes(60))] + [failed(T0 - minutes(m)) for m in (3, 2, 1, 0)]
    store(acme.tenant, *events)
    process()
    assert anomalies(acme.tenant) == []


def test_test_mode_never_mixes_with_live(acme):
    store(acme.tenant, *hour(3, 0), *hour(3, 0, livemode=False))
    process()
    assert anomalies(acme.tenant) == []


def test_test_mode_spike_is_a_test_mode_anomaly(acme):
    store(acme.tenant, *hour(6, 4, livemode=False), *hour(0, 100))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.livemode is False


def test_succeeded_charges_alone_never_fire(acme):
    store(acme.tenant, *hour(0, 30))
    process()
    assert anomalies(acme.tenant) == []


# --- order, duplicates, shapes, settings, isolation ---------------------------------


def test_out_of_order_duplicates_and_reprocessing_give_the_same_anomaly(acme, globex):
    events = hour(6, 14, end=T0 + minutes(58)) + [failed(T0 + minutes(60 + m)) for m in range(1, 21)]
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    redelivered = dict(events[-1], id="evt_redelivered")  # another event about the same charge
    store(acme.tenant, *events)
    store(globex.tenant, *shuffled, redelivered)
    store(globex.tenant, *shuffled[:5])  # delivered twice
    process()
    reprocess_all(acme.tenant)
    reprocess_all(globex.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        assert anomaly.occurrences == 2
        assert anomaly.first_seen_at == T0 + minutes(58) and anomaly.last_seen_at == T0 + minutes(61)
        assert anomaly.evidence["failures"] == 7 and anomaly.evidence["charges"] == 21


def test_one_by_one_as_they_arrive(acme):
    for payload in hour(6, 14):
        store(acme.tenant, payload)
        process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.occurrences == 1
    assert anomaly.title == "30% of charges failed in 60 min (6 of 20)"


def test_old_and_new_charge_shapes(acme):
    # Basil charges have no `invoice`; pre-2019 ones carry the card in `source`, not payment_method_details.
    old = [failed(T0 - minutes(m), payment_method_details=None, source={"object": "card", "fingerprint": "F"})
           for m in (1, 2, 3)]
    new = [failed(T0 - minutes(m), invoice=None) for m in (4, 5, 6)]
    store(acme.tenant, *old, *new, *[succeeded(T0 - minutes(10 + m), invoice=None) for m in range(14)])
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "30% of charges failed in 60 min (6 of 20)"


def test_failure_without_code_or_object_is_skipped_not_crashed(acme):
    odd = [failed(T0 - minutes(m), code=None) for m in range(6)]
    store(acme.tenant, *odd)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["failure_codes"] == [["unknown", 6]]
    assert detector_errors(acme.tenant) == []


def test_threshold_overrides(acme):
    set_thresholds(acme.tenant, min_failures=3, window_minutes=10, critical_rate=0.9)
    store(acme.tenant, failed(T0 - minutes(8)), failed(T0 - minutes(4)), failed(T0), succeeded(T0 - minutes(9)))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "75% of charges failed in 10 min (3 of 4)"
    assert anomaly.severity == "high"


def test_disabled_detector_stays_quiet(acme):
    with tenant_scope(acme.tenant):
        DetectorConfig.objects.create(tenant=acme.tenant, detector=DETECTOR, enabled=False)
    store(acme.tenant, *hour(8, 2))
    process()
    assert anomalies(acme.tenant) == []


def test_other_tenants_charges_are_never_read(acme, globex):
    store(acme.tenant, *hour(3, 0))
    store(globex.tenant, *hour(3, 0))
    process()
    assert anomalies(acme.tenant) == [] and anomalies(globex.tenant) == []
    # And another tenant's clean history does not calm this one's spike.
    store(globex.tenant, *history(400, 0, end=T0 + timedelta(days=3)))
    store(acme.tenant, *hour(10, 2, end=T0 + timedelta(days=3, hours=2)))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["baseline_charges"] == 3  # its own three earlier failures only
    assert anomalies(globex.tenant) == []
