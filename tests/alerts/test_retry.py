"""Operators retry deliveries from the admin: failed and pending rows become due now, sent ones never go again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import dispatch
from alerts.models import AlertDelivery
from tenants.scope import tenant_scope
from tests.alerts.conftest import open_anomaly
from tests.alerts.helpers import make_channel, refreshed

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/alerts/alertdelivery/"


def _row(tenant, channel, anomaly, status, attempts, next_attempt_at=None, kind="opened", seq=0, error=""):
    with tenant_scope(tenant):
        return AlertDelivery.objects.create(
            tenant=tenant, channel=channel, anomaly=anomaly, kind=kind, seq=seq, severity="high", status=status,
            attempts=attempts, next_attempt_at=next_attempt_at, error=error,
            sent_at=timezone.now() if status == "sent" else None,
        )


@pytest.fixture
def log(acme, globex, receiver):
    """Acme: a final failure, a pending row held for later, a sent row, a test; Globex: a final failure."""
    channel = make_channel(acme.tenant, "webhook", {"url": receiver.url("/ok")})
    theirs = make_channel(globex.tenant, "webhook", {"url": receiver.url("/ok")})
    anomaly, other = open_anomaly(acme.tenant), open_anomaly(globex.tenant)
    with tenant_scope(acme.tenant):
        AlertDelivery.objects.all().delete()  # only the rows made here
    with tenant_scope(globex.tenant):
        AlertDelivery.objects.all().delete()
    later = timezone.now() + timedelta(hours=3)
    return {
        "failed": _row(acme.tenant, channel, anomaly, "failed", 6, error="the receiver answered 500"),
        "pending": _row(acme.tenant, channel, anomaly, "pending", 0, later, kind="reminder", seq=1),
        "sent": _row(acme.tenant, channel, anomaly, "sent", 1, kind="escalated", seq=3),
        "test": _row(acme.tenant, channel, None, "failed", 1, kind="test", error="timeout"),
        "foreign": _row(globex.tenant, theirs, other, "failed", 6, error="the receiver answered 500"),
    }


def test_retry_makes_failed_and_pending_rows_due_and_leaves_the_rest(acme, log):
    now = timezone.now()
    with tenant_scope(acme.tenant):
        count = dispatch.retry_deliveries([r.public_id for r in log.values()], now=now)
    assert count == 2
    failed, pending = refreshed(log["failed"]), refreshed(log["pending"])
    assert (failed.status, failed.next_attempt_at, failed.attempts) == ("pending", now, 6)  # attempts kept
    assert (pending.status, pending.next_attempt_at) == ("pending", now)
    for name in ("sent", "test", "foreign"):  # another tenant's id is ignored from acme's scope
        row = refreshed(log[name])
        assert (row.status, row.next_attempt_at) == (log[name].status, None), name


def test_admin_action_requeues_failed_rows_and_the_worker_sends_them_once(admin_client, acme, log, receiver):
    response = admin_client.post(CHANGELIST, {"action": "retry_selected_deliveries",
                                              "_selected_action": [log["failed"].pk, log["sent"].pk]}, follow=True)
    assert response.status_code == 200
    assert "1 deliveries queued to be sent now (1 left alone" in response.content.decode()
    assert refreshed(log["failed"]).status == "pending"
    assert refreshed(log["sent"]).next_attempt_at is None
    dispatch.drain()
    failed, sent = refreshed(log["failed"]), refreshed(log["sent"])
    assert (failed.status, failed.attempts, failed.response_status) == ("sent", 7, 200)
    assert (sent.status, sent.attempts) == ("sent", 1)
    assert len(receiver.to("/ok")) == 1  # only the retried row went out: the sent one never again
    foreign = refreshed(log["foreign"])
    assert (foreign.status, foreign.next_attempt_at, foreign.attempts) == ("failed", None, 6)


def test_admin_action_across_tenants_touches_only_the_selected_rows(admin_client, acme, globex, log):
    admin_client.post(CHANGELIST, {"action": "retry_selected_deliveries", "_selected_action": [log["foreign"].pk]})
    assert refreshed(log["foreign"]).status == "pending"
    assert refreshed(log["failed"]).status == "failed" and refreshed(log["failed"]).next_attempt_at is None
    assert refreshed(log["pending"]).next_attempt_at > timezone.now() + timedelta(hours=2)


def test_failed_or_pending_shortcut_filter(admin_client, log):
    response = admin_client.get(CHANGELIST + "?attention=failed_or_pending")
    assert response.status_code == 200
    shown = {row.pk for row in response.context["cl"].result_list}
    assert shown == {log[n].pk for n in ("failed", "pending", "test", "foreign")}
    assert "Failed or pending" in admin_client.get(CHANGELIST).content.decode()
