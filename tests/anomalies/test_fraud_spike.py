import copy
import itertools
import json
from datetime import timedelta

import pytest

from anomalies.models import DetectorConfig
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, anomalies_of, detector_errors_of, event, process, reprocess_all, store
from tests.conftest import FIXTURES
from webhooks.payloads import validate_event

pytestmark = pytest.mark.django_db

DETECTOR = "fraud_spike"
OPENAPI = FIXTURES / "stripe-openapi"
_ids = itertools.count(1)


def anomalies(tenant):
    return anomalies_of(tenant, DETECTOR)


def detector_errors(tenant):
    return detector_errors_of(tenant, DETECTOR)


def days(n):
    return timedelta(days=n)


def hours(n):
    return timedelta(hours=n)


def dispute(at, **kw):
    """A charge.dispute.created (stripe-ruby-mock, API 2020-08-27): no customer on a dispute."""
    return event("charge.dispute.created", at, **kw)


def _envelope(event_type, obj, at, livemode):
    n = next(_ids)
    obj = dict(obj, created=int(at.timestamp()), livemode=livemode)
    payload = {
        "id": f"evt_fraud{n}", "object": "event", "api_version": None, "created": int(at.timestamp()),
        "livemode": livemode, "type": event_type, "data": {"object": obj}, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
    }
    validate_event(payload)
    return payload, n


def basil_dispute(at, livemode=True):
    """A dispute in the 2025-03-31.basil shape (stripe/openapi fixture) wrapped in an event."""
    obj = json.loads((OPENAPI / "2025-03-31.basil" / "dispute.json").read_text())
    payload, n = _envelope("charge.dispute.created", obj, at, livemode)
    payload["data"]["object"]["id"] = f"du_basil{n}"
    return payload


def efw(at, livemode=True, version=""):
    """A radar.early_fraud_warning.created around the stripe/openapi early fraud warning object."""
    obj = json.loads((OPENAPI / version / "radar.early_fraud_warning.json").read_text())
    payload, n = _envelope("radar.early_fraud_warning.created", copy.deepcopy(obj), at, livemode)
    payload["data"]["object"].update(id=f"issfr_t{n}", charge=f"ch_efw{n}")
    return payload


def charges(n, end=T0, span=days(29), **kw):
    """`n` successful charges spread over `span` before `end`."""
    step = span / n
    return [event("charge.succeeded", end - step * (i + 1), **kw) for i in range(n)]


def set_thresholds(tenant, **values):
    with tenant_scope(tenant):
        DetectorConfig.objects.create(tenant=tenant, detector=DETECTOR, thresholds=values)


# --- the dispute rate ---------------------------------------------------------------


def test_three_disputes_on_400_charges_fire(acme):
    disputes = [dispute(T0 - days(2)), dispute(T0 - days(1)), dispute(T0)]
    store(acme.tenant, *charges(400), *disputes)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "critical" and anomaly.status == "open"
    assert anomaly.fingerprint == "tenant" and anomaly.customer_id == ""
    assert anomaly.title == "Fraud spike: 3 disputes in 30 days (0.75% of 400 charges)"
    assert anomaly.evidence["event_ids"] == [d["id"] for d in disputes]
    assert anomaly.evidence["rules"] == ["dispute_rate"]
    assert anomaly.evidence["disputes"] == 3 and anomaly.evidence["charges"] == 400
    assert anomaly.evidence["dispute_ids"] == [d["data"]["object"]["id"] for d in disputes]
    assert "3 disputes in 30 days against 400 successful charges (0.75%" in anomaly.summary
    assert anomaly.first_seen_at == anomaly.last_seen_at == T0
    assert anomaly.occurrences == 1
    assert detector_errors(acme.tenant) == []


def test_each_further_dispute_while_too_high_is_an_occurrence(acme):
    store(acme.tenant, *charges(400, span=days(25)), *[dispute(T0 - days(3 - i)) for i in range(5)])
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.occurrences == 3  # the 3rd, 4th and 5th dispute
    assert anomaly.last_seen_at == T0 + days(1)
    assert anomaly.title == "Fraud spike: 5 disputes in 30 days (1.25% of 400 charges)"


def test_just_under_the_dispute_rate(acme):
    store(acme.tenant, *charges(401), dispute(T0 - days(2)), dispute(T0 - days(1)), dispute(T0))
    process()
    assert anomalies(acme.tenant) == []


@pytest.mark.parametrize("count", [1, 2])
def test_one_or_two_disputes_at_a_small_business_are_not_a_spike(acme, count):
    store(acme.tenant, *charges(10), *[dispute(T0 - hours(i)) for i in range(count)])
    process()
    assert anomalies(acme.tenant) == []


def test_disputes_outside_the_window_do_not_count(acme):
    # Exactly 30 days before the last dispute is outside (end - 30 d, end].
    store(acme.tenant, *charges(50), dispute(T0 - days(30)), dispute(T0 - days(29)), dispute(T0))
    process()
    assert anomalies(acme.tenant) == []


def test_charges_outside_the_window_do_not_count(acme):
    # One of the 400 charges is 30 days before the last dispute: outside, so 3 of 399.
    old = charges(1, end=T0 - days(30), span=hours(1))
    store(acme.tenant, *old, *charges(399), dispute(T0 - days(1)), dispute(T0 - hours(1)), dispute(T0))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["charges"] == 399


def test_no_charges_at_all_gives_no_rate(acme):
    # The tenant may not send charge events: 3 disputes in a month are not a rate of infinity.
    store(acme.tenant, dispute(T0 - days(10)), dispute(T0 - days(5)), dispute(T0))
    process()
    assert anomalies(acme.tenant) == []


def test_test_mode_never_mixes_with_live(acme):
    store(acme.tenant, *charges(10), dispute(T0 - days(1)), dispute(T0 - hours(1)), dispute(T0, livemode=False))
    process()
    assert anomalies(acme.tenant) == []


# --- the burst -------------------------------------------------------------------------


def test_five_disputes_within_a_day_fire_whatever_the_volume(acme):
    disputes = [dispute(T0 + hours(5 * i)) for i in range(5)]  # 0 h .. 20 h
    store(acme.tenant, *disputes)  # no charges: the rate rules cannot say anything
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Fraud spike: 5 disputes in 24 h"
    assert anomaly.evidence["rules"] == ["burst"] and anomaly.evidence["charges"] == 0
    assert anomaly.last_seen_at == T0 + hours(20)


def test_burst_and_rate_together_are_one_anomaly(acme):
    store(acme.tenant, *charges(100), *[dispute(T0 + hours(i)) for i in range(5)])
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["rules"] == ["burst", "dispute_rate"]
    assert anomaly.title == "Fraud spike: 5 disputes in 24 h"
    assert anomaly.occurrences == 3  # 3rd (rate), 4th (rate), 5th (burst and rate)


@pytest.mark.parametrize("disputes", [
    lambda: [dispute(T0 + hours(5 * i)) for i in range(4)],  # four only
    lambda: [dispute(T0 + hours(6 * i)) for i in range(5)],  # over exactly 24 h: the first is out
])
def test_just_under_the_burst(acme, disputes):
    store(acme.tenant, *disputes())
    process()
    assert anomalies(acme.tenant) == []


# --- early fraud warnings ------------------------------------------------------------------


def test_three_early_fraud_warnings_on_600_charges_fire(acme):
    warnings = [efw(T0 - days(3)), efw(T0 - days(2), version="2025-03-31.basil"), efw(T0)]
    store(acme.tenant, *charges(600), *warnings)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Fraud spike: 3 early fraud warnings in 30 days (0.50% of 600 charges)"
    assert anomaly.evidence["rules"] == ["efw_rate"]
    assert anomaly.evidence["event_ids"] == [w["id"] for w in warnings]
    assert anomaly.severity == "critical"


def test_just_under_the_early_fraud_warning_rate(acme):
    store(acme.tenant, *charges(601), efw(T0 - days(3)), efw(T0 - days(2)), efw(T0))
    process()
    assert anomalies(acme.tenant) == []


def test_two_warnings_are_not_enough(acme):
    store(acme.tenant, *charges(20), efw(T0 - days(1)), efw(T0))
    process()
    assert anomalies(acme.tenant) == []


def test_warnings_and_disputes_are_counted_apart(acme):
    # 2 disputes and 2 warnings on 100 charges: neither reaches its minimum of 3.
    store(acme.tenant, *charges(100), dispute(T0 - days(2)), efw(T0 - days(1)), dispute(T0 - hours(2)), efw(T0))
    process()
    assert anomalies(acme.tenant) == []


# --- shapes, order, duplicates, settings, isolation --------------------------------------------


def test_basil_disputes_count_like_old_ones(acme):
    store(acme.tenant, *charges(100), basil_dispute(T0 - days(2)), dispute(T0 - days(1)), basil_dispute(T0))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Fraud spike: 3 disputes in 30 days (3.00% of 100 charges)"


def test_late_arrival_one_by_one_gives_the_same_anomaly(acme, globex):
    history = charges(100)
    disputes = [dispute(T0 - days(20)), dispute(T0 - days(10)), dispute(T0)]
    store(acme.tenant, *history)
    store(globex.tenant, *history)
    process()
    for payload in disputes:  # in order
        store(acme.tenant, payload)
        process()
    for payload in reversed(disputes):  # newest first: only the oldest, last, completes the picture
        store(globex.tenant, payload)
        process()
    reprocess_all(acme.tenant)
    reprocess_all(globex.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        assert anomaly.occurrences == 1
        assert anomaly.last_seen_at == T0
        assert anomaly.title == "Fraud spike: 3 disputes in 30 days (3.00% of 100 charges)"


def test_the_same_dispute_sent_twice_counts_once(acme):
    first = dispute(T0 - days(1))
    again = dict(first, id="evt_again", created=int(T0.timestamp()))  # same dispute id, a later event
    store(acme.tenant, *charges(100), first, dispute(T0 - days(2)), again)
    process()
    assert anomalies(acme.tenant) == []
    assert detector_errors(acme.tenant) == []


def test_threshold_overrides(acme):
    set_thresholds(acme.tenant, min_disputes=1, dispute_rate=0.02)
    store(acme.tenant, *charges(50), dispute(T0))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Fraud spike: 1 dispute in 30 days (2.00% of 50 charges)"


def test_other_tenants_events_are_never_read(acme, globex):
    store(acme.tenant, *charges(10), dispute(T0 - days(1)), dispute(T0))
    store(globex.tenant, dispute(T0 - hours(1)), *[dispute(T0 + hours(i)) for i in range(1, 4)])
    process()
    assert anomalies(acme.tenant) == [] and anomalies(globex.tenant) == []


@pytest.mark.parametrize("burst,fires", [(5, False), (6, True)])
def test_a_burst_must_stand_out_from_the_tenants_usual_disputes(acme, burst, fires):
    # Two disputes a day for the 29 days before: five in a day is ordinary here, six (3x) is not.
    usual = [dispute(T0 - days(29) + hours(12 * i)) for i in range(58)]
    store(acme.tenant, *usual, *[dispute(T0 + hours(1 + 4 * i)) for i in range(burst)])
    process()
    found = anomalies(acme.tenant)
    assert bool(found) is fires
    if fires:
        assert found[0].title == "Fraud spike: 6 disputes in 24 h"
        assert "(usually about 2.0)" in found[0].summary
