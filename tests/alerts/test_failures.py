"""Receivers that misbehave: failures are visible, retried when transient, final when permanent."""

import time
from datetime import timedelta

import pytest

from alerts import dispatch, safehttp
from alerts.models import AlertDelivery
from tenants.scope import tenant_scope
from tests.alerts.conftest import later, open_anomaly
from tests.alerts.helpers import deliveries, make_channel, refreshed

pytestmark = pytest.mark.django_db


def _send_one(tenant, receiver, path, **channel_fields):
    channel = make_channel(tenant, "webhook", {"url": receiver.url(path)}, **channel_fields)
    open_anomaly(tenant)
    dispatch.drain(now=later(31))
    [row] = deliveries(tenant, kind="opened")
    return channel, row


def test_500_is_retried_with_backoff_and_shown_on_the_channel(acme, receiver):
    channel, row = _send_one(acme.tenant, receiver, "/status/500")
    assert row.status == "failed" and row.attempts == 1 and row.response_status == 500
    assert "answered 500" in row.error
    assert timedelta(seconds=80) < row.next_attempt_at - row.created_at < timedelta(seconds=100)  # 31 s + 1 min
    channel = refreshed(channel)
    assert "answered 500" in channel.last_error and channel.enabled
    first_retry = row.next_attempt_at
    dispatch.drain(now=first_retry + timedelta(seconds=1))
    row = refreshed(row)
    assert row.attempts == 2 and len(receiver.to("/status/500")) == 2
    assert row.next_attempt_at - first_retry == timedelta(minutes=5, seconds=1)


def test_retries_stop_after_the_last_backoff(acme, receiver):
    _, row = _send_one(acme.tenant, receiver, "/status/503")
    for _ in range(10):
        row = refreshed(row)
        if row.next_attempt_at is None:
            break
        dispatch.drain(now=row.next_attempt_at + timedelta(seconds=1))
    assert row.status == "failed" and row.next_attempt_at is None
    assert row.attempts == dispatch.MAX_ATTEMPTS == 6
    assert len(receiver.to("/status/503")) == 6


def test_410_is_permanent_at_once(acme, receiver):
    channel, row = _send_one(acme.tenant, receiver, "/status/410")
    assert row.status == "failed" and row.next_attempt_at is None and row.attempts == 1
    assert refreshed(channel).consecutive_failures == 1


@pytest.mark.parametrize("code", [408, 429])
def test_429_and_408_are_retried(acme, receiver, code):
    _, row = _send_one(acme.tenant, receiver, f"/status/{code}")
    assert row.status == "failed" and row.next_attempt_at is not None and row.response_status == code


def test_timeout_is_transient(acme, receiver, settings):
    settings.BILLINGWATCH_ALERTS_TIMEOUT_SECONDS = 0.3
    receiver.slow_seconds = 1.5
    started = time.monotonic()
    _, row = _send_one(acme.tenant, receiver, "/slow")
    assert time.monotonic() - started < 1.4
    assert row.status == "failed" and row.next_attempt_at is not None
    assert "did not answer in time" in row.error


def test_redirect_is_not_followed_and_fails(acme, receiver):
    _, row = _send_one(acme.tenant, receiver, "/redirect")
    assert row.status == "failed" and row.next_attempt_at is None and row.response_status == 302
    assert "redirect" in row.error
    assert receiver.to("/ok") == []


def test_huge_body_is_read_only_up_to_the_limit(acme, receiver, settings):
    settings.BILLINGWATCH_ALERTS_MAX_RESPONSE_BYTES = 1000
    result = safehttp.post_json(receiver.url("/huge"), b"{}")
    assert result.status == 200 and result.truncated and len(result.body) == 1000
    _, row = _send_one(acme.tenant, receiver, "/huge")
    assert row.status == "sent"


def test_private_address_is_refused_after_dns_resolution(acme, receiver, settings):
    settings.BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS = False
    port = receiver.server.server_address[1]
    with pytest.raises(safehttp.UnsafeURL, match="127.0.0.1"):
        safehttp.post_json(f"http://localhost:{port}/ok", b"{}")  # a name that resolves to loopback
    settings.BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS = True
    channel = make_channel(acme.tenant, "slack", {"url": f"http://localhost:{port}/ok"})
    settings.BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS = False
    open_anomaly(acme.tenant)
    dispatch.drain(now=later(31))
    [row] = deliveries(acme.tenant, kind="opened")
    assert row.status == "failed" and row.next_attempt_at is None
    assert "private, loopback or reserved" in row.error
    assert receiver.requests == []
    assert "private" in refreshed(channel).last_error


def test_http_is_refused_unless_allowed(settings, receiver):
    settings.BILLINGWATCH_ALERTS_ALLOW_HTTP = False
    with pytest.raises(safehttp.UnsafeURL):
        safehttp.post_json(receiver.url("/ok"), b"{}")
    assert receiver.requests == []


def test_repeated_permanent_failures_disable_the_channel_visibly(acme, receiver, settings):
    settings.BILLINGWATCH_ALERTS_DISABLE_AFTER = 3
    channel = make_channel(acme.tenant, "webhook", {"url": receiver.url("/status/404")})
    for _ in range(4):
        open_anomaly(acme.tenant)
        dispatch.drain(now=later(31))
    channel = refreshed(channel)
    assert not channel.enabled and channel.auto_disabled and channel.auto_disabled_at
    assert "answered 404" in channel.last_error
    assert len(receiver.to("/status/404")) == 3  # nothing sent once it is off
    assert len(deliveries(acme.tenant, kind="opened")) == 3  # a disabled channel queues nothing


def test_a_success_resets_the_failure_count(acme, receiver):
    channel = make_channel(acme.tenant, "webhook", {"url": receiver.url("/status/404")})
    open_anomaly(acme.tenant)
    dispatch.drain(now=later(31))
    assert refreshed(channel).consecutive_failures == 1
    from alerts import channels as services

    with tenant_scope(acme.tenant):
        services.update_channel(channel.public_id, config={"url": receiver.url("/ok")})
    open_anomaly(acme.tenant)
    dispatch.drain(now=later(31))
    channel = refreshed(channel)
    assert channel.consecutive_failures == 0 and channel.last_sent_at


def test_worker_killed_mid_send_records_one_success(acme, receiver, settings):
    """A claim whose worker died is claimed again after its lease; the late worker cannot record a second success."""
    make_channel(acme.tenant, "webhook", {"url": receiver.url("/hook")})
    open_anomaly(acme.tenant)
    # Worker A claims the row and "dies" after sending, before settling.
    [claim_a] = dispatch.claim_due(10, now=later(31))
    row = refreshed(AlertDelivery.all_tenants.get(pk=claim_a.id))
    assert row.status == "sending" and row.attempts == 1
    assert dispatch.claim_due(10, now=later(60)) == []  # still leased: nobody else takes it
    # Worker B, after the lease: claims and sends.
    after_lease = later(settings.BILLINGWATCH_ALERTS_LEASE_SECONDS + 60)
    assert dispatch.send_due(now=after_lease) == 1
    row = refreshed(row)
    assert row.status == "sent" and row.attempts == 2
    # Worker A wakes up and tries to record its send: refused, nothing changes.
    with tenant_scope(acme.tenant):
        assert dispatch._finish(row, claim_a.attempts, status="sent", error="late") is False
    assert refreshed(row).error == ""
    assert dispatch.drain(now=after_lease) == 0
    assert len(receiver.to("/hook")) == 1
    assert len(deliveries(acme.tenant, kind="opened", status="sent")) == 1
