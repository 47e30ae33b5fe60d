from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from anomalies import engine
from anomalies.models import DetectorConfig
from anomalies.scans import backtest
from tenants.scope import tenant_scope
from tests.anomalies.events import anomalies_of, event, store

pytestmark = pytest.mark.django_db

START = datetime(2026, 2, 2, 0, 0, tzinfo=UTC)  # a Monday
HOURS = timedelta(hours=1)


def deliver(tenant, received, source="webhook", livemode=True):
    payload = event("charge.succeeded", received - timedelta(seconds=2), customer="cus_A", livemode=livemode)
    store(tenant, payload, received_at=received, source=source)
    return payload["id"]


def traffic(tenant, start=START, end=START + timedelta(days=8), per_hour=4, when=lambda local: True, zone=UTC,
            **kw):
    """Deliveries every 60/per_hour minutes in [start, end) whenever `when(local time)`; returns the last."""
    step = timedelta(minutes=60 / per_hour)
    at, last = start + step / 2, None
    while at < end:
        if when(at.astimezone(zone)):
            last = at
            deliver(tenant, at, **kw)
        at += step
    return last


def scan(tenant, as_of):
    with tenant_scope(tenant):
        outcome = engine.run_scans(tenant, as_of=as_of, only="webhook_silence")
    assert outcome.errors == []


def anomalies(tenant):
    return anomalies_of(tenant, "webhook_silence")


def test_a_silence_far_longer_than_usual_fires(acme):
    last = traffic(acme.tenant)  # 4 an hour, around the clock, for 8 days
    scan(acme.tenant, last + timedelta(hours=2.5))
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "medium" and anomaly.status == "open" and anomaly.livemode
    assert anomaly.fingerprint == "silence"
    assert anomaly.title == "No webhooks for 2.5 h (about 10 expected)"
    assert "since 2026-02-09 23:52 UTC" in anomaly.summary and "the chance of none at all is 4.5e-05" in anomaly.summary
    assert anomaly.evidence["gap_hours"] == 2.5 and anomaly.evidence["expected_events"] == 10.0
    assert anomaly.evidence["last_received_at"] == last.isoformat()
    assert len(anomaly.evidence["event_ids"]) == 1
    assert anomaly.first_seen_at == anomaly.last_seen_at == last + timedelta(hours=2.5)


@pytest.mark.parametrize("gap, fires", [(1.99, False), (2.0, True)])
def test_the_minimum_gap_is_exact(acme, gap, fires):
    last = traffic(acme.tenant, per_hour=6)  # 12 expected in 2 hours: improbable enough
    scan(acme.tenant, last + timedelta(hours=gap))
    assert len(anomalies(acme.tenant)) == (1 if fires else 0)


@pytest.mark.parametrize("gap, fires", [(2.25, False), (2.35, True)])
def test_the_probability_threshold_is_exact(acme, gap, fires):
    # 3 an hour: exp(-6.75) = 0.00117 is not below 0.001; exp(-7.05) = 0.00087 is.
    last = traffic(acme.tenant, per_hour=3)
    scan(acme.tenant, last + timedelta(hours=gap))
    assert len(anomalies(acme.tenant)) == (1 if fires else 0)


def business_hours(local):
    return local.weekday() < 5 and 9 <= local.hour < 17


def test_quiet_nights_and_weekends_are_not_silences(acme):
    last = traffic(acme.tenant, end=START + timedelta(weeks=3), when=business_hours)  # ends Friday 16:52
    scan(acme.tenant, last + timedelta(hours=7))  # Friday night
    scan(acme.tenant, last + timedelta(hours=40))  # Sunday morning
    assert anomalies(acme.tenant) == []
    scan(acme.tenant, last + timedelta(hours=64, minutes=45))  # Monday 09:37 after the weekend: 3 expected
    assert anomalies(acme.tenant) == []
    scan(acme.tenant, last + timedelta(hours=66, minutes=15))  # Monday 11:07: 9 expected, none came
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "No webhooks for 66.2 h (about 9 expected)"
    assert anomaly.severity == "high"  # the gap itself is over 12 h, though only 2 busy hours went silent


def test_hours_of_the_week_are_local_to_the_tenant(acme):
    # Business hours in New York across the switch to summer time (Sunday 8 March): 9-17 local is
    # 14-22 UTC before it and 13-21 UTC after it.
    zone = ZoneInfo("America/New_York")
    acme.tenant.timezone = "America/New_York"
    acme.tenant.save()
    last = traffic(acme.tenant, start=datetime(2026, 2, 23, 5, tzinfo=UTC), end=datetime(2026, 3, 14, 5, tzinfo=UTC),
                   when=business_hours, zone=zone)
    assert last == datetime(2026, 3, 13, 16, 52, 30, tzinfo=zone)
    scan(acme.tenant, last + timedelta(hours=7))  # Friday night
    assert anomalies(acme.tenant) == []
    # Monday 11:07 local: 9 expected from the local hours 9 and 10 (a UTC model would expect about 6).
    scan(acme.tenant, datetime(2026, 3, 16, 11, 7, 30, tzinfo=zone))
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["expected_events"] == 9.0


def test_a_short_history_never_fires_then_unseen_hours_take_the_same_hour_of_similar_days(acme):
    last = traffic(acme.tenant, end=START + timedelta(days=2, hours=23))
    scan(acme.tenant, last + timedelta(hours=10))
    assert anomalies(acme.tenant) == []
    last = traffic(acme.tenant, start=START + timedelta(days=2, hours=23), end=START + timedelta(days=3, hours=2))
    scan(acme.tenant, last + timedelta(hours=10))
    assert len(anomalies(acme.tenant)) == 1


def test_imported_events_are_not_deliveries(acme):
    last = traffic(acme.tenant, source="import")
    scan(acme.tenant, last + timedelta(hours=5))
    assert anomalies(acme.tenant) == []  # no webhook history at all
    last = traffic(acme.tenant, start=START + timedelta(days=8), end=START + timedelta(days=16))
    traffic(acme.tenant, start=last + HOURS, end=last + timedelta(hours=5), source="import")
    scan(acme.tenant, last + timedelta(hours=5))
    assert len(anomalies(acme.tenant)) == 1  # an import during a silence does not end it


def test_deliveries_flowing_again_resolve_it_and_a_new_silence_is_a_new_anomaly(acme):
    last = traffic(acme.tenant)
    scan(acme.tenant, last + timedelta(hours=3))
    scan(acme.tenant, last + timedelta(hours=4))  # the same silence: nothing new
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.occurrences == 1
    resumed = traffic(acme.tenant, start=last + timedelta(hours=5), end=last + timedelta(hours=6))
    scan(acme.tenant, resumed + timedelta(minutes=10))
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.status == "resolved"
    scan(acme.tenant, resumed + timedelta(hours=3))
    first, second = anomalies(acme.tenant)
    assert first.status == "resolved" and second.status == "open"


def test_a_long_silence_becomes_high(acme):
    last = traffic(acme.tenant)
    scan(acme.tenant, last + timedelta(hours=3))
    scan(acme.tenant, last + timedelta(hours=11.9))
    scan(acme.tenant, last + timedelta(hours=12))
    scan(acme.tenant, last + timedelta(hours=13))
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "high" and anomaly.occurrences == 2
    assert anomaly.title == "No webhooks for 12.0 h (about 48 expected)"
    assert anomaly.first_seen_at == last + timedelta(hours=3) and anomaly.last_seen_at == last + timedelta(hours=12)


def test_a_one_off_burst_does_not_make_its_hour_look_busy(acme):
    # One delivery an hour, and once a burst of 300 in an hour (Tuesday 14:00 a week before).
    last = traffic(acme.tenant, per_hour=1, end=datetime(2026, 2, 24, 13, 0, tzinfo=UTC))
    burst = datetime(2026, 2, 17, 14, 0, tzinfo=UTC)
    for k in range(300):
        deliver(acme.tenant, burst + timedelta(seconds=10 * k + 1))
    scan(acme.tenant, last + timedelta(hours=2.5))  # silent over Tuesday 14:00 again
    assert anomalies(acme.tenant) == []


def test_test_mode_is_a_world_of_its_own(acme):
    last = traffic(acme.tenant)
    traffic(acme.tenant, start=last, end=last + timedelta(hours=5), livemode=False)
    scan(acme.tenant, last + timedelta(hours=5))
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.livemode is True  # test-mode deliveries neither end the live silence nor raise their own


def test_threshold_overrides(acme):
    with tenant_scope(acme.tenant):
        DetectorConfig.objects.create(tenant=acme.tenant, detector="webhook_silence",
                                      thresholds={"min_gap_hours": 4, "high_after_hours": 5})
    last = traffic(acme.tenant)
    scan(acme.tenant, last + timedelta(hours=3.9))
    assert anomalies(acme.tenant) == []
    scan(acme.tenant, last + timedelta(hours=5))
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "high"


def test_backtest_finds_the_silence_and_its_end(acme):
    last = traffic(acme.tenant, end=START + timedelta(days=8, hours=-4))  # last at 19:52, then silent
    resumed = traffic(acme.tenant, start=last + timedelta(hours=20), end=last + timedelta(hours=30))
    with tenant_scope(acme.tenant):
        backtest(acme.tenant, START, resumed, only="webhook_silence")
        backtest(acme.tenant, START, resumed, only="webhook_silence")
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.first_seen_at == datetime(2026, 2, 10, 0, 0, tzinfo=UTC)  # the midnight scan inside the gap
    assert anomaly.status == "resolved" and anomaly.occurrences == 1


def test_other_tenants_deliveries_are_never_read(acme, globex):
    last = traffic(acme.tenant)
    traffic(globex.tenant, start=last, end=last + timedelta(hours=5))
    scan(acme.tenant, last + timedelta(hours=5))
    scan(globex.tenant, last + timedelta(hours=5, minutes=1))
    assert len(anomalies(acme.tenant)) == 1
    assert anomalies(globex.tenant) == []


def test_a_new_accounts_first_weekend_is_not_held_to_its_weekdays(acme):
    last = traffic(acme.tenant, end=START + timedelta(days=5))  # Monday to Friday, around the clock
    scan(acme.tenant, last + timedelta(hours=10))  # Saturday 10:00: no Saturday or Sunday seen yet
    assert anomalies(acme.tenant) == []
