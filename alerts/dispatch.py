"""Sending due deliveries: claim, render, send, settle. Called by the worker between batches.

Claiming is the events' pattern (webhooks.worker): one UPDATE over the due
rows, FOR UPDATE SKIP LOCKED on PostgreSQL, the conditional UPDATE alone on
SQLite. A claim sets status=sending, counts an attempt and moves
`next_attempt_at` to the end of a lease: if the worker dies mid-send, the row
is claimed again after the lease.

Settling is conditional on the claim (status=sending AND attempts = the
claimed attempt number): a worker whose lease ran out, and whose row someone
else claimed since, cannot record anything, so one row records at most one
successful send. What this cannot promise is that the receiver saw the
message once: a worker killed after the receiver accepted the message but
before the row was settled leads to a second send after the lease. Receivers
can drop repeats by the message id (webhook `BillingWatch-Delivery`, PagerDuty
dedup_key = anomaly id, mail `X-BillingWatch-Delivery`); Slack and Discord
have no such key, so there a repeat is possible in that window.

No database transaction is open while a message is on the wire: rendering
and settling run in the worker's thread inside the tenant's scope, the
sends run in a small thread pool without database access.
"""

import logging
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from alerts.models import AlertChannel, AlertDelivery, ChannelKind, DeliveryStatus, NoticeKind
from alerts.notices import deliver_after
from alerts.transports import Notice, TransportError, get_transport
from alerts.transports.base import AnomalyInfo
from anomalies.models import AnomalyStatus
from tenants.models import Tenant
from tenants.scope import current_tenant, tenant_scope

logger = logging.getLogger(__name__)

# About 1 min, 5 min, 30 min, 2 h, 6 h; after the last one a delivery stays failed.
RETRY_DELAYS = [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6)]
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
MAX_GROUP = 100


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    tenant_id: int
    attempts: int


@dataclass
class Message:
    """One send: one or more claimed rows of one channel."""

    channel: AlertChannel
    rows: list[AlertDelivery]
    notice: Notice | None = None
    status: int | None = None
    error: TransportError | None = None
    skip_reason: str = ""
    claims: dict[int, int] = field(default_factory=dict)  # row id -> claimed attempts


def _table() -> str:
    return connection.ops.quote_name(AlertDelivery._meta.db_table)


def _claim(where: str, where_params: list, limit: int, lease: timedelta, now: datetime) -> list[Claimed]:
    field_ = AlertDelivery._meta.get_field("next_attempt_at")
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    sql = (
        f"UPDATE {_table()} SET status = %s, next_attempt_at = %s, attempts = attempts + 1 "
        f"WHERE id IN (SELECT id FROM {_table()} WHERE next_attempt_at IS NOT NULL AND {where} "
        f"ORDER BY next_attempt_at LIMIT %s{lock}) RETURNING id, tenant_id, attempts"
    )
    params = [DeliveryStatus.SENDING, field_.get_db_prep_save(now + lease, connection), *where_params, limit]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [Claimed(*row) for row in cursor.fetchall()]


def claim_due(limit: int, now: datetime | None = None) -> list[Claimed]:
    """Claim up to `limit` due deliveries across all tenants (the unscoped door)."""
    now = now or timezone.now()
    prep = AlertDelivery._meta.get_field("next_attempt_at").get_db_prep_save(now, connection)
    return _claim("next_attempt_at <= %s", [prep], limit, _lease(), now)


def _claim_group(tenant_id: int, channel_id: int, now: datetime) -> list[Claimed]:
    """The channel's other opened notices still in their group wait join the message."""
    # Only rows in their group wait: not those held back by quiet hours.
    horizon = now + timedelta(seconds=settings.BILLINGWATCH_ALERTS_GROUP_WAIT_SECONDS)
    field_ = AlertDelivery._meta.get_field("next_attempt_at")
    where = (
        "tenant_id = %s AND channel_id = %s AND kind = %s AND status = %s AND attempts = 0 "
        "AND next_attempt_at <= %s"
    )
    params = [tenant_id, channel_id, NoticeKind.OPENED, DeliveryStatus.PENDING, field_.get_db_prep_save(horizon, connection)]
    return _claim(where, params, MAX_GROUP, _lease(), now)


def _lease() -> timedelta:
    return timedelta(seconds=settings.BILLINGWATCH_ALERTS_LEASE_SECONDS)


def send_due(limit: int | None = None, now: datetime | None = None) -> int:
    """Claim and send one batch of due deliveries; returns how many rows were claimed."""
    limit = limit or settings.BILLINGWATCH_ALERTS_BATCH_SIZE
    claimed = claim_due(limit, now)
    if not claimed:
        return 0
    by_tenant: dict[int, list[Claimed]] = defaultdict(list)
    for item in claimed:
        by_tenant[item.tenant_id].append(item)
    tenants = Tenant.objects.in_bulk(by_tenant.keys())
    prepared: list[tuple[Tenant, list[Message]]] = []
    total = len(claimed)
    for tenant_id, items in by_tenant.items():
        tenant = tenants[tenant_id]
        with tenant_scope(tenant):
            messages, extra = _prepare(tenant, items, now or timezone.now())
        prepared.append((tenant, messages))
        total += extra
    _send_all([m for _, messages in prepared for m in messages if m.notice is not None])
    for tenant, messages in prepared:
        with tenant_scope(tenant):
            for message in messages:
                _settle(tenant, message, now or timezone.now())
    return total


RETRYABLE = (DeliveryStatus.FAILED, DeliveryStatus.PENDING)


def retry_deliveries(public_ids, now: datetime | None = None) -> int:
    """Make the current tenant's failed or pending deliveries among `public_ids` due now; returns how many.

    The next worker pass sends them (quiet hours and the group wait no longer hold them back:
    a person asked). Sent, skipped and in-flight (sending) rows are left alone, so nothing
    already sent goes out again; test messages are not queued (send another test instead).
    Attempts are kept, so the log stays true: a row that still had automatic retries keeps
    them, one that had used them all gets exactly one more attempt.
    """
    now = now or timezone.now()
    return (
        AlertDelivery.objects.filter(tenant=current_tenant(), public_id__in=list(public_ids), status__in=RETRYABLE)
        .exclude(kind=NoticeKind.TEST)
        .update(status=DeliveryStatus.PENDING, next_attempt_at=now)
    )


def drain(now: datetime | None = None) -> int:
    """Send until nothing is due (tests, commands, the benchmark)."""
    total = 0
    while claimed := send_due(now=now):
        total += claimed
    return total


def _prepare(tenant: Tenant, items: list[Claimed], now: datetime) -> tuple[list[Message], int]:
    claims = {item.id: item.attempts for item in items}
    rows = AlertDelivery.objects.select_related("channel", "anomaly").in_bulk(list(claims))
    extra = 0
    for channel_id in {r.channel_id for r in rows.values() if r.kind == NoticeKind.OPENED}:
        group = _claim_group(tenant.pk, channel_id, now)
        if group:
            extra += len(group)
            claims.update({g.id: g.attempts for g in group})
            rows.update(AlertDelivery.objects.select_related("channel", "anomaly").in_bulk([g.id for g in group]))
    messages: list[Message] = []
    opened: dict[int, Message] = {}
    for row in sorted(rows.values(), key=lambda r: r.pk):
        if row.kind == NoticeKind.OPENED and row.channel_id in opened:
            opened[row.channel_id].rows.append(row)
            continue
        message = Message(channel=row.channel, rows=[row])
        messages.append(message)
        if row.kind == NoticeKind.OPENED:
            opened[row.channel_id] = message
    for message in messages:
        message.claims = {r.pk: claims[r.pk] for r in message.rows}
        _render(tenant, message, now)
    return messages, extra


def _still_news(row: AlertDelivery) -> bool:
    if row.kind in (NoticeKind.DIGEST, NoticeKind.TEST):
        return True
    if row.kind == NoticeKind.RESOLVED:
        return row.anomaly.status == AnomalyStatus.RESOLVED
    # Acknowledged, snoozed, resolved and dismissed anomalies stay quiet.
    return row.anomaly.status == AnomalyStatus.OPEN


def _render(tenant: Tenant, message: Message, now: datetime) -> None:
    channel = message.channel
    if not channel.enabled:
        message.skip_reason = "the channel is disabled"
        return
    live = [r for r in message.rows if _still_news(r)]
    for row in message.rows:
        if row not in live:
            _finish(row, message.claims[row.pk], status=DeliveryStatus.SKIPPED, error="no longer news: anomaly is " + row.anomaly.status)
    message.rows = live
    if not live:
        message.skip_reason = "nothing left to say"
        return
    first = live[0]
    message.notice = Notice(
        kind=first.kind,
        message_id=str(first.public_id),
        tenant_name=tenant.name,
        tenant_slug=tenant.slug,
        dashboard_url=dashboard_url(tenant),
        created=now,
        anomalies=[anomaly_info(tenant, r.anomaly) for r in live if r.anomaly_id],
        digest=(first.payload or {}) if first.kind == NoticeKind.DIGEST else None,
        signing_secret=channel.signing_secret,
    )


def dashboard_url(tenant: Tenant) -> str:
    return f"{settings.BILLINGWATCH_BASE_URL.rstrip('/')}/t/{tenant.slug}/"


def anomaly_info(tenant: Tenant, anomaly) -> AnomalyInfo:
    evidence = anomaly.evidence or {}
    amount = evidence.get("amount")
    return AnomalyInfo(
        id=str(anomaly.public_id),
        detector=anomaly.detector,
        severity=anomaly.severity,
        status=anomaly.status,
        title=anomaly.title,
        summary=anomaly.summary,
        customer_id=anomaly.customer_id,
        livemode=anomaly.livemode,
        amount=amount if isinstance(amount, int) else None,
        currency=str(evidence.get("currency") or ""),
        first_seen_at=anomaly.first_seen_at,
        last_seen_at=anomaly.last_seen_at,
        url=f"{dashboard_url(tenant)}anomalies/{anomaly.public_id}/",
    )


def _send_one(message: Message) -> None:
    try:
        message.status = get_transport(message.channel.kind)(message.notice, message.channel.config)
    except TransportError as exc:
        message.error = exc
    except Exception as exc:  # a transport bug must not take the worker down
        logger.exception("transport %s failed", message.channel.kind)
        message.error = TransportError(f"internal error: {type(exc).__name__}: {exc}")


def _send_all(messages: list[Message]) -> None:
    threads = max(1, settings.BILLINGWATCH_ALERTS_SEND_THREADS)
    if len(messages) <= 1 or threads == 1:
        for message in messages:
            _send_one(message)
        return
    with ThreadPoolExecutor(max_workers=min(threads, len(messages))) as pool:
        list(pool.map(_send_one, messages))


def _finish(row: AlertDelivery, attempts: int, **fields) -> bool:
    """Settle a claimed row, only if this claim still owns it."""
    fields.setdefault("next_attempt_at", None)
    return bool(
        AlertDelivery.objects.filter(pk=row.pk, status=DeliveryStatus.SENDING, attempts=attempts).update(**fields)
    )


def _settle(tenant: Tenant, message: Message, now: datetime) -> None:
    channel = message.channel
    if message.skip_reason:
        for row in message.rows:
            _finish(row, message.claims[row.pk], status=DeliveryStatus.SKIPPED, error=message.skip_reason)
        return
    if message.error is None:
        group_id = uuid.uuid4() if len(message.rows) > 1 else None
        settled = [
            row
            for row in message.rows
            if _finish(
                row,
                message.claims[row.pk],
                status=DeliveryStatus.SENT,
                sent_at=now,
                response_status=message.status,
                message_id=group_id,
                error="",
            )
        ]
        AlertChannel.objects.filter(pk=channel.pk).update(last_sent_at=now, consecutive_failures=0)
        for row in settled:
            _schedule_reminder(tenant, channel, row, now)
        return
    error = message.error
    final_rows = 0
    for row in message.rows:
        attempts = message.claims[row.pk]
        final = error.permanent or attempts >= MAX_ATTEMPTS or row.kind == NoticeKind.TEST
        retry_at = None
        if not final:
            retry_at = deliver_after(channel, tenant.timezone, row.severity or "low", now + RETRY_DELAYS[attempts - 1])
        if _finish(
            row,
            attempts,
            status=DeliveryStatus.FAILED,
            next_attempt_at=retry_at,
            response_status=error.status,
            error=error.message,
        ):
            final_rows += final
    record_failure(channel, error.message, now, final=bool(final_rows))


def record_failure(channel: AlertChannel, error: str, now: datetime, final: bool) -> None:
    """Show the error on the channel; repeated final failures turn it off (and say so)."""
    updates = {"last_error": error, "last_error_at": now}
    if final:
        updates["consecutive_failures"] = F("consecutive_failures") + 1
    AlertChannel.objects.filter(pk=channel.pk).update(**updates)
    if final:
        AlertChannel.objects.filter(
            pk=channel.pk, enabled=True, consecutive_failures__gte=settings.BILLINGWATCH_ALERTS_DISABLE_AFTER
        ).update(enabled=False, auto_disabled_at=now)


def _schedule_reminder(tenant: Tenant, channel: AlertChannel, row: AlertDelivery, now: datetime) -> None:
    """While the anomaly stays open and unacknowledged, remind after its severity's repeat interval."""
    if row.kind not in (NoticeKind.OPENED, NoticeKind.ESCALATED, NoticeKind.REMINDER):
        return
    if channel.kind == ChannelKind.PAGERDUTY:
        return  # PagerDuty escalates and re-notifies on its own
    hours = settings.BILLINGWATCH_ALERTS_REPEAT_HOURS.get(row.anomaly.severity, 0)
    if not hours:
        return
    existing = AlertDelivery.objects.filter(anomaly_id=row.anomaly_id, channel=channel, kind=NoticeKind.REMINDER)
    seq = (existing.aggregate(last=Max("seq"))["last"] or 0) + 1
    existing.filter(status=DeliveryStatus.PENDING, attempts=0).update(
        status=DeliveryStatus.SKIPPED, next_attempt_at=None, error="superseded by a newer reminder"
    )
    AlertDelivery.objects.bulk_create(
        [
            AlertDelivery(
                tenant=tenant,
                channel=channel,
                anomaly_id=row.anomaly_id,
                kind=NoticeKind.REMINDER,
                seq=seq,
                severity=row.anomaly.severity,
                next_attempt_at=deliver_after(
                    channel, tenant.timezone, row.anomaly.severity, now + timedelta(hours=hours)
                ),
            )
        ],
        ignore_conflicts=True,
    )
