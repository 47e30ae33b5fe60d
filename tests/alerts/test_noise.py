"""Noise control: one notice per opening, escalations, reminders, resolve, grouping, quiet hours, filters."""

from datetime import time as clock
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts import dispatch, notices
from anomalies import lifecycle
from tenants.scope import tenant_scope
from tests.alerts.conftest import later, open_anomaly
from tests.alerts.helpers import deliveries, make_channel

pytestmark = pytest.mark.django_db


def hook(tenant, receiver, **fields):
    return make_channel(tenant, "webhook", {"url": receiver.url("/hook")}, **fields)


def kinds(receiver):
    return [r.json["type"] for r in receiver.to("/hook")]


def test_opening_waits_for_the_group_then_sends_once(acme, receiver):
    hook(acme.tenant, receiver)
    open_anomaly(acme.tenant)
    assert dispatch.drain(now=later(5)) == 0 and receiver.requests == []
    assert dispatch.drain(now=later(31)) == 1
    assert dispatch.drain(now=later(120)) == 0
    assert kinds(receiver) == ["anomaly.opened"]


def test_anomalies_opening_together_go_out_as_one_message_per_channel(acme, receiver):
    hook(acme.tenant, receiver)
    make_channel(acme.tenant, "slack", {"url": receiver.url("/slack")})
    for n in range(3):
        open_anomaly(acme.tenant, key=f"g{n}")
    assert dispatch.drain(now=later(31)) == 6
    [message] = receiver.to("/hook")
    assert len(message.json["data"]["anomalies"]) == 3
    [slack] = receiver.to("/slack")
    assert slack.json["text"].startswith("[HIGH] 3 new anomalies")
    rows = deliveries(acme.tenant, kind="opened", channel__kind="webhook")
    assert {r.status for r in rows} == {"sent"} and len({r.message_id for r in rows}) == 1


def test_later_findings_stay_quiet_and_a_severity_rise_notifies(acme, receiver):
    hook(acme.tenant, receiver, min_severity="low")
    open_anomaly(acme.tenant, key="same", severity="medium")
    dispatch.drain(now=later(31))
    open_anomaly(acme.tenant, key="same", severity="medium")  # same severity: an update, no notice
    open_anomaly(acme.tenant, key="same", severity="low")
    dispatch.drain(now=later(31))
    assert kinds(receiver) == ["anomaly.opened"]
    anomaly = open_anomaly(acme.tenant, key="same", severity="critical")
    dispatch.drain(now=later(31))
    assert kinds(receiver) == ["anomaly.opened", "anomaly.escalated"]
    assert receiver.to("/hook")[-1].json["data"]["anomalies"][0]["severity"] == "critical"
    assert anomaly.severity == "critical"


def test_an_escalation_before_the_first_send_is_one_message(acme, receiver):
    hook(acme.tenant, receiver, min_severity="low")
    open_anomaly(acme.tenant, key="e", severity="low")
    open_anomaly(acme.tenant, key="e", severity="high")
    dispatch.drain(now=later(31))
    [message] = receiver.to("/hook")
    assert message.json["type"] == "anomaly.opened"
    assert message.json["data"]["anomalies"][0]["severity"] == "high"


def test_reminders_repeat_while_open_and_stop_when_acknowledged(acme, receiver, settings):
    settings.BILLINGWATCH_ALERTS_REPEAT_HOURS = {"critical": 4, "high": 12, "medium": 24, "low": 0}
    hook(acme.tenant, receiver)
    anomaly = open_anomaly(acme.tenant, severity="critical")
    dispatch.drain(now=later(31))
    assert dispatch.drain(now=later(3 * 3600)) == 0  # not yet
    dispatch.drain(now=later(4 * 3600 + 60))
    assert kinds(receiver) == ["anomaly.opened", "anomaly.reminder"]
    with tenant_scope(acme.tenant):
        lifecycle.change_status(anomaly, "acknowledge", actor_label="alice")
    dispatch.drain(now=later(20 * 3600))
    assert kinds(receiver) == ["anomaly.opened", "anomaly.reminder"]
    assert deliveries(acme.tenant, kind="reminder")[-1].status == "skipped"


def test_low_severity_gets_no_reminders(acme, receiver):
    hook(acme.tenant, receiver, min_severity="low")
    open_anomaly(acme.tenant, severity="low")
    dispatch.drain(now=later(31))
    assert deliveries(acme.tenant, kind="reminder") == []


def test_resolve_notices_only_for_channels_that_want_them(acme, receiver):
    hook(acme.tenant, receiver, send_resolved=True)
    make_channel(acme.tenant, "slack", {"url": receiver.url("/slack")})  # send_resolved off
    anomaly = open_anomaly(acme.tenant)
    dispatch.drain(now=later(31))
    with tenant_scope(acme.tenant):
        lifecycle.change_status(anomaly, "resolve", actor_label="alice")
    dispatch.drain(now=later(31))
    assert kinds(receiver) == ["anomaly.opened", "anomaly.resolved"]
    assert len(receiver.to("/slack")) == 1


def test_resolved_within_the_group_wait_sends_nothing(acme, receiver):
    hook(acme.tenant, receiver, send_resolved=True)
    anomaly = open_anomaly(acme.tenant)
    with tenant_scope(acme.tenant):
        lifecycle.change_status(anomaly, "resolve", actor_label="alice")
    dispatch.drain(now=later(60))
    assert receiver.requests == []
    [row] = deliveries(acme.tenant)
    assert row.status == "skipped" and "resolved" in row.error


@pytest.mark.parametrize("action", ["acknowledge", "false_positive", "snooze"])
def test_triaged_before_sending_stays_quiet(acme, receiver, action):
    hook(acme.tenant, receiver)
    anomaly = open_anomaly(acme.tenant)
    with tenant_scope(acme.tenant):
        lifecycle.change_status(anomaly, action, actor_label="a", reason="known", until=later(3600))
    dispatch.drain(now=later(31))
    assert receiver.requests == []


def test_quiet_hours_hold_non_critical_notices_in_the_tenants_timezone(acme, receiver):
    tenant = acme.tenant
    tenant.timezone = "Asia/Tokyo"
    tenant.save()
    now_tokyo = timezone.now().astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    start = (now_tokyo - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now_tokyo + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    hook(tenant, receiver, quiet_start=start, quiet_end=end, min_severity="low")
    open_anomaly(tenant, key="quiet", severity="high")
    open_anomaly(tenant, key="loud", severity="critical")
    dispatch.drain(now=later(31))
    [message] = receiver.to("/hook")
    assert [a["severity"] for a in message.json["data"]["anomalies"]] == ["critical"]
    waiting = deliveries(tenant, status="pending", kind="opened")
    assert len(waiting) == 1
    assert waiting[0].next_attempt_at > timezone.now() + timedelta(hours=1, minutes=50)
    dispatch.drain(now=later(2 * 3600 + 120))
    assert len(receiver.to("/hook")) == 2


def test_quiet_hours_spanning_midnight():
    from alerts.models import AlertChannel

    channel = AlertChannel(quiet_start=clock(22), quiet_end=clock(7))
    at = timezone.datetime(2026, 1, 5, 23, 30, tzinfo=timezone.UTC)
    assert notices.deliver_after(channel, "UTC", "high", at) == timezone.datetime(2026, 1, 6, 7, 0, tzinfo=timezone.UTC)
    early = timezone.datetime(2026, 1, 6, 6, 0, tzinfo=timezone.UTC)
    assert notices.deliver_after(channel, "UTC", "high", early).hour == 7
    noon = timezone.datetime(2026, 1, 6, 12, 0, tzinfo=timezone.UTC)
    assert notices.deliver_after(channel, "UTC", "high", noon) == noon
    assert notices.deliver_after(channel, "UTC", "critical", at) == at


def test_filters_by_severity_detector_and_mode(acme, receiver):
    hook(acme.tenant, receiver, min_severity="high", detectors=["card_testing"], mode="live")
    open_anomaly(acme.tenant, severity="medium", detector="card_testing")
    open_anomaly(acme.tenant, severity="critical", detector="duplicate_charge")
    open_anomaly(acme.tenant, severity="critical", detector="card_testing", livemode=False)
    assert deliveries(acme.tenant) == []
    open_anomaly(acme.tenant, severity="high", detector="card_testing")
    assert len(deliveries(acme.tenant)) == 1


def test_stale_anomalies_from_an_import_send_nothing(acme, receiver):
    hook(acme.tenant, receiver)
    open_anomaly(acme.tenant, at=timezone.now() - timedelta(days=3))
    assert deliveries(acme.tenant) == []


def test_the_hook_reads_channels_once_per_batch_and_nothing_more_without_channels(acme, globex, receiver):
    anomaly = open_anomaly(acme.tenant)
    with tenant_scope(acme.tenant), notices.batch_cache():
        with CaptureQueriesContext(connection) as first:
            notices.anomaly_opened(anomaly)
        with CaptureQueriesContext(connection) as again:
            notices.anomaly_opened(anomaly)
            notices.anomaly_escalated(anomaly)
    assert len(first) == 1 and len(again) == 0
    assert deliveries(acme.tenant) == []


def test_a_real_event_through_the_worker_queues_and_sends(acme, receiver):
    from tests.anomalies.events import event, store
    from webhooks.worker import Worker

    hook(acme.tenant, receiver)
    at = timezone.now() - timedelta(minutes=10)
    store(
        acme.tenant,
        event("charge.succeeded", at, customer="cus_W", amount=4900, currency="usd"),
        event("charge.succeeded", at + timedelta(minutes=1), customer="cus_W", amount=4900, currency="usd"),
    )
    Worker(once=True).run()
    [row] = deliveries(acme.tenant)
    assert row.kind == "opened" and row.status == "pending"  # in its group wait
    with tenant_scope(acme.tenant):
        type(row).objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    Worker(once=True).run()
    [message] = receiver.to("/hook")
    assert message.json["data"]["anomalies"][0]["customer_id"] == "cus_W"
