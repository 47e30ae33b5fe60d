import random
from datetime import timedelta

import pytest

from anomalies.detectors.webhook_lag import EVENT_TYPES
from anomalies.models import DetectorConfig
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, anomalies_of, event, minutes, process, reprocess_all, store

pytestmark = pytest.mark.django_db


def delivery(received, delay_seconds, event_type="charge.succeeded", livemode=True):
    """(payload, received_at): an event created `delay_seconds` before it was received."""
    payload = event(event_type, received - timedelta(seconds=delay_seconds), customer="cus_A", livemode=livemode)
    return payload, received


def deliver(tenant, *deliveries, source="webhook"):
    for payload, received in deliveries:
        store(tenant, payload, received_at=received, source=source)
    return [payload["id"] for payload, _ in deliveries]


def anomalies(tenant):
    return anomalies_of(tenant, "webhook_lag")


def steady(count=18, start=T0, delay=5, **kw):
    """On-time deliveries, one every 30 s."""
    return [delivery(start + timedelta(seconds=30 * k), delay, **kw) for k in range(count)]


def test_late_deliveries_fire(acme):
    late = [delivery(T0 + minutes(9), 400), delivery(T0 + minutes(9.5), 620)]
    ids = deliver(acme.tenant, *steady(), *late)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "medium" and anomaly.status == "open"
    assert anomaly.fingerprint == "lag" and anomaly.customer_id == ""
    # 20 deliveries: the nearest-rank p95 is the 19th smallest delay, the smaller late one.
    assert anomaly.title == "Webhooks arriving late: p95 delay 7 min over 15 min"
    assert anomaly.evidence["p95_seconds"] == 400 and anomaly.evidence["max_seconds"] == 620
    assert anomaly.evidence["events"] == 20 and anomaly.evidence["late_events"] == 2
    assert sorted(anomaly.evidence["event_ids"]) == sorted(ids[-2:])  # the late deliveries
    assert "Of the 20 webhooks received in the 15 minutes up to 2026-03-02 12:09 UTC, 2 arrived" in anomaly.summary
    # The worker processes a batch in created order: the later delivery was created first, and its
    # window (all 20) is the one counted for the bucket.
    assert anomaly.first_seen_at == anomaly.last_seen_at == T0 + minutes(9.5)
    assert anomaly.occurrences == 1  # one bucket, one severity


def test_one_late_delivery_in_twenty_is_under_the_p95(acme):
    deliver(acme.tenant, *steady(), delivery(T0 + minutes(9), 5), delivery(T0 + minutes(9.5), 3000))
    process()
    assert anomalies(acme.tenant) == []


@pytest.mark.parametrize("delay, severity", [(299, None), (300, "medium"), (1799, "medium"), (1800, "critical")])
def test_thresholds_are_exact(acme, delay, severity):
    deliver(acme.tenant, *[delivery(T0 + minutes(k), delay) for k in range(5)])
    process()
    assert [a.severity for a in anomalies(acme.tenant)] == ([severity] if severity else [])


@pytest.mark.parametrize("count, fires", [(4, False), (5, True)])
def test_minimum_number_of_deliveries(acme, count, fires):
    deliver(acme.tenant, *[delivery(T0 + minutes(k), 900) for k in range(count)])
    process()
    assert len(anomalies(acme.tenant)) == (1 if fires else 0)


def test_imported_events_never_count(acme):
    deliver(acme.tenant, *[delivery(T0 + minutes(k), 900) for k in range(10)], source="import")
    deliver(acme.tenant, *[delivery(T0 + minutes(10 + k), 900) for k in range(4)])
    process()
    assert anomalies(acme.tenant) == []


def test_only_deliveries_within_the_window_count(acme):
    # Five late deliveries 4 minutes apart: never five within 15 minutes.
    deliver(acme.tenant, *[delivery(T0 + minutes(4 * k), 900) for k in range(5)])
    process()
    assert anomalies(acme.tenant) == []


def test_test_mode_deliveries_are_a_world_of_their_own(acme):
    deliver(acme.tenant, *[delivery(T0 + minutes(k), 900, livemode=False) for k in range(3)])
    deliver(acme.tenant, *[delivery(T0 + minutes(k), 900) for k in range(3)])
    process()
    assert anomalies(acme.tenant) == []


@pytest.mark.parametrize("event_type", ["invoice.paid", "customer.subscription.updated", "payment_intent.created",
                                        "charge.dispute.created", "checkout.session.completed"])
def test_any_common_event_type_is_judged(acme, event_type):
    assert event_type in EVENT_TYPES
    deliver(acme.tenant, *[delivery(T0 + minutes(k), 900, event_type) for k in range(5)])
    process()
    assert len(anomalies(acme.tenant)) == 1


def test_a_lasting_lag_counts_once_per_bucket_and_escalates(acme):
    # Late deliveries every minute for 40 minutes from 12:00: buckets 12:00, 12:15 and 12:30.
    lag = [delivery(T0 + minutes(k), 600) for k in range(40)]
    # Then it gets worse within the 12:30 bucket.
    worse = [delivery(T0 + minutes(40) + timedelta(seconds=10 * k), 3600) for k in range(20)]
    deliver(acme.tenant, *lag, *worse)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "critical"
    assert anomaly.occurrences == 4  # 3 warning buckets, and 12:30 once more as critical
    assert anomaly.first_seen_at == T0 + minutes(4)  # the first delivery with 5 in its window


def test_out_of_order_and_reprocessing_give_the_same_anomaly(acme, globex):
    deliveries = [delivery(T0 + minutes(k), 600 + 60 * k) for k in range(25)]
    deliver(acme.tenant, *deliveries)
    shuffled = list(deliveries)
    random.Random(5).shuffle(shuffled)
    deliver(globex.tenant, *shuffled)
    process()
    reprocess_all(acme.tenant)
    reprocess_all(globex.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        # Buckets 12:00 (warning) and 12:15 (warning, then critical from the 20th minute).
        assert (anomaly.severity, anomaly.occurrences) == ("critical", 3)
        assert T0 + minutes(4) <= anomaly.first_seen_at < T0 + minutes(15)
        assert T0 + minutes(20) <= anomaly.last_seen_at <= T0 + minutes(24)


def test_threshold_overrides(acme):
    with tenant_scope(acme.tenant):
        DetectorConfig.objects.create(tenant=acme.tenant, detector="webhook_lag",
                                      thresholds={"warning_seconds": 1000, "min_events": 3})
    deliver(acme.tenant, *[delivery(T0 + minutes(k), 900) for k in range(5)])
    deliver(acme.tenant, *[delivery(T0 + minutes(60 + k), 1000) for k in range(3)])
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.first_seen_at == T0 + minutes(62) and anomaly.evidence["events"] == 3


def test_other_tenants_deliveries_are_never_read(acme, globex):
    deliver(globex.tenant, *[delivery(T0 + minutes(k), 900) for k in range(4)])
    deliver(acme.tenant, delivery(T0 + minutes(5), 900))
    process()
    assert anomalies(acme.tenant) == [] and anomalies(globex.tenant) == []
