"""Daily and weekly digests: content, "all clear", scheduling in the tenant's time zone, sent once."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from alerts import digests, dispatch
from anomalies import lifecycle
from tenants.scope import tenant_scope
from tests.alerts.conftest import open_anomaly
from tests.alerts.helpers import deliveries, make_channel, refreshed
from tests.anomalies.events import event, store

pytestmark = pytest.mark.django_db


def test_next_digest_is_local_morning_and_weekly_on_monday():
    after = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
    daily = digests.next_digest_at("daily", "Europe/Paris", after)
    assert daily.isoformat() == "2026-11-26T08:00:00+01:00"
    weekly = digests.next_digest_at("weekly", "America/New_York", after)
    assert weekly.weekday() == 0 and weekly.hour == 8 and weekly.date().isoformat() == "2026-11-30"
    assert digests.next_digest_at("none", "UTC", after) is None


def test_digest_reports_open_opened_resolved_and_revenue_versus_previous_period(acme):
    channel = make_channel(acme.tenant, "email", {"to": ["ops@example.com"]}, digest="daily")
    assert channel.next_digest_at is not None
    now = timezone.now()
    store(
        acme.tenant,
        event("charge.succeeded", now - timedelta(hours=3), amount=15000, currency="usd"),
        event("charge.succeeded", now - timedelta(hours=30), amount=10000, currency="usd"),
        event("charge.succeeded", now - timedelta(hours=2), amount=500, currency="eur"),
    )
    open_anomaly(acme.tenant, severity="high", title="Still open")
    gone = open_anomaly(acme.tenant, severity="critical", title="Fixed")
    with tenant_scope(acme.tenant):
        lifecycle.change_status(gone, "resolve", actor_label="alice")
    channel = refreshed(channel)
    with tenant_scope(acme.tenant):
        data = digests.build_digest(channel, now + timedelta(minutes=1))
    assert data["open_by_severity"] == [{"severity": "high", "count": 1}]
    assert data["opened_count"] == 2 and data["resolved_count"] == 1 and not data["all_clear"]
    usd = next(r for r in data["revenue"] if r["currency"] == "USD")
    assert (usd["current"], usd["previous"], usd["change_pct"]) == (15000, 10000, 50.0)
    eur = next(r for r in data["revenue"] if r["currency"] == "EUR")
    assert (eur["current"], eur["previous"], eur["change_pct"]) == (500, 0, None)


def test_a_due_digest_is_queued_once_and_mailed(acme):
    channel = make_channel(acme.tenant, "email", {"to": ["ops@example.com"]}, digest="weekly")
    due = timezone.now() - timedelta(minutes=1)
    type(channel).all_tenants.filter(pk=channel.pk).update(next_digest_at=due)
    assert digests.queue_due_digests() == 1
    assert digests.queue_due_digests() == 0  # claimed: the next one is a week away
    assert refreshed(channel).next_digest_at > timezone.now() + timedelta(days=1)
    dispatch.drain()
    [message] = mail.outbox
    assert message.subject.startswith("All clear: BillingWatch weekly digest for Acme")
    assert "All clear" in message.body and "no charges in either period" in message.body
    [row] = deliveries(acme.tenant, kind="digest")
    assert row.status == "sent" and row.payload["all_clear"] is True


def test_send_digests_command(acme):
    channel = make_channel(acme.tenant, "email", {"to": ["ops@example.com"]}, digest="daily")
    type(channel).all_tenants.filter(pk=channel.pk).update(next_digest_at=timezone.now() - timedelta(seconds=1))
    call_command("send_digests")
    assert len(mail.outbox) == 1 and "daily digest" in mail.outbox[0].subject
