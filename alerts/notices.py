"""Which notices an anomaly change queues (the outbox): called, not signalled.

The engine calls `anomaly_opened` / `anomaly_escalated` and
`anomalies.lifecycle.change_status` calls `anomaly_status_changed`, inside
the transaction that changes the anomaly, so a notice is queued if and only
if the change commits. Sending happens later, in alerts.dispatch.

Noise control decided here:
- one `opened` notice per matching channel, due after the group wait (so
  anomalies opening together leave as one message per channel);
- `escalated` only when the severity rises (a still-unsent opened notice
  simply goes out with the new severity instead);
- `resolved` only to channels that asked for it (PagerDuty always, to close
  the incident) and that were actually told about the anomaly; notices still
  waiting when an anomaly is resolved or dismissed are dropped (as
  Alertmanager does within group_wait);
- anomalies whose latest finding is older than BILLINGWATCH_ALERTS_STALE_HOURS
  (an import of last month's history) are left to the dashboard and digest.

The hook must stay cheap on the worker's hot path: the tenant's enabled
channels are read once per batch (`batch_cache()`, entered by the worker) and
a tenant without channels costs no query beyond that one.
"""

import contextvars
import zoneinfo
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from alerts.models import AlertChannel, AlertDelivery, ChannelKind, DeliveryStatus, NoticeKind
from anomalies.models import SEVERITY_RANK, AnomalyStatus, Severity
from tenants.scope import current_tenant

_batch: contextvars.ContextVar[dict | None] = contextvars.ContextVar("billingwatch_alert_channels", default=None)

WAITING = {"status": DeliveryStatus.PENDING, "attempts": 0}


@contextmanager
def batch_cache():
    """Within this block each tenant's channels are read at most once."""
    token = _batch.set({})
    try:
        yield
    finally:
        _batch.reset(token)


def enabled_channels(tenant_id: int) -> list[AlertChannel]:
    cache = _batch.get()
    if cache is not None and tenant_id in cache:
        return cache[tenant_id]
    channels = list(AlertChannel.objects.filter(tenant_id=tenant_id, enabled=True))
    if cache is not None:
        cache[tenant_id] = channels
    return channels


def wants(channel: AlertChannel, anomaly, severity: str | None = None) -> bool:
    severity = severity or anomaly.severity
    if SEVERITY_RANK[severity] < SEVERITY_RANK[channel.min_severity]:
        return False
    if channel.detectors and anomaly.detector not in channel.detectors:
        return False
    return channel.mode == "both" or (channel.mode == "live") == bool(anomaly.livemode)


def deliver_after(channel: AlertChannel, tz_name: str, severity: str, at: datetime) -> datetime:
    """`at`, or the end of the channel's quiet hours when `at` falls in them (critical never waits)."""
    start, end = channel.quiet_start, channel.quiet_end
    if severity == Severity.CRITICAL or start is None or end is None or start == end:
        return at
    zone = zoneinfo.ZoneInfo(tz_name)
    local = at.astimezone(zone)
    now = local.time()
    quiet = start <= now < end if start < end else (now >= start or now < end)
    if not quiet:
        return at
    day = local.date() if now < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone)


def _stale(anomaly, now: datetime) -> bool:
    hours = settings.BILLINGWATCH_ALERTS_STALE_HOURS
    return hours > 0 and anomaly.last_seen_at < now - timedelta(hours=hours)


def _queue(anomaly, channels, kind: str, seq: int, due: datetime, now: datetime) -> int:
    tz_name = current_tenant().timezone
    rows = [
        AlertDelivery(
            tenant_id=anomaly.tenant_id,
            channel=channel,
            anomaly=anomaly,
            kind=kind,
            seq=seq,
            severity=anomaly.severity,
            next_attempt_at=deliver_after(channel, tz_name, anomaly.severity, due),
        )
        for channel in channels
    ]
    if rows:
        AlertDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _matching(anomaly, now: datetime) -> list[AlertChannel]:
    """The enabled channels that want this anomaly (none for a stale one, without a query)."""
    if _stale(anomaly, now):
        return []
    return [c for c in enabled_channels(anomaly.tenant_id) if wants(c, anomaly)]


def anomaly_opened(anomaly, now: datetime | None = None) -> int:
    now = now or timezone.now()
    channels = _matching(anomaly, now)
    if not channels:
        return 0
    due = now + timedelta(seconds=settings.BILLINGWATCH_ALERTS_GROUP_WAIT_SECONDS)
    return _queue(anomaly, channels, NoticeKind.OPENED, 0, due, now)


def anomaly_escalated(anomaly, now: datetime | None = None) -> int:
    now = now or timezone.now()
    channels = _matching(anomaly, now)
    if not channels:
        return 0
    # A notice still waiting goes out with the new severity: no second message,
    # but it may not wait for quiet hours any more.
    waiting = {
        d.channel_id: d
        for d in AlertDelivery.objects.filter(anomaly=anomaly, kind=NoticeKind.OPENED, **WAITING)
    }
    tz_name = current_tenant().timezone
    for channel in channels:
        delivery = waiting.get(channel.pk)
        if delivery is not None:
            due = min(delivery.next_attempt_at, deliver_after(channel, tz_name, anomaly.severity, now))
            AlertDelivery.objects.filter(pk=delivery.pk, **WAITING).update(
                next_attempt_at=due, severity=anomaly.severity
            )
    fresh = [c for c in channels if c.pk not in waiting]
    return _queue(anomaly, fresh, NoticeKind.ESCALATED, SEVERITY_RANK[anomaly.severity], now, now)


def anomaly_status_changed(anomaly, previous: str, now: datetime | None = None) -> int:
    """Resolve and dismiss drop what is still waiting; resolve tells who was told."""
    if anomaly.status not in (AnomalyStatus.RESOLVED, AnomalyStatus.FALSE_POSITIVE):
        return 0  # acknowledged / snoozed: dispatch sends nothing but resolve notices for them
    if not enabled_channels(anomaly.tenant_id):
        return 0
    now = now or timezone.now()
    AlertDelivery.objects.filter(anomaly=anomaly, **WAITING).exclude(kind=NoticeKind.RESOLVED).update(
        status=DeliveryStatus.SKIPPED, next_attempt_at=None, error=f"anomaly {anomaly.status} before it was sent"
    )
    if anomaly.status != AnomalyStatus.RESOLVED:
        return 0
    told = set(
        AlertDelivery.objects.filter(anomaly=anomaly)
        .exclude(kind=NoticeKind.RESOLVED)
        .exclude(status=DeliveryStatus.SKIPPED)
        .values_list("channel_id", flat=True)
    )
    channels = [
        c
        for c in enabled_channels(anomaly.tenant_id)
        if c.pk in told and (c.send_resolved or c.kind == ChannelKind.PAGERDUTY)
    ]
    return _queue(anomaly, channels, NoticeKind.RESOLVED, 0, now, now)
