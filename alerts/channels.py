"""Channel services: the functions the dashboard, the API and the admin all call.

All run inside the tenant's scope. A channel is addressed by its public id;
another tenant's id is simply not found (ChannelNotFound → 404), and nothing
changes.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from alerts import digests
from alerts.dispatch import dashboard_url, record_failure
from alerts.models import AlertChannel, AlertDelivery, ChannelKind, DeliveryStatus, DigestFrequency, NoticeKind, new_signing_secret
from alerts.transports import Notice, TransportError, get_transport
from alerts.transports.base import AnomalyInfo
from tenants.scope import current_tenant

EDITABLE = (
    "name",
    "kind",
    "config",
    "min_severity",
    "detectors",
    "mode",
    "send_resolved",
    "enabled",
    "quiet_start",
    "quiet_end",
    "digest",
)


class ChannelNotFound(LookupError):
    """No channel with this id in the current tenant (also: another tenant's id)."""


class NotSigned(Exception):
    """Only webhook channels sign their messages, so only they have a secret to rotate."""

    code = "not_signed"
    message = "only webhook channels have a signing secret"


def get_channel(public_id) -> AlertChannel:
    try:
        key = uuid.UUID(str(public_id))
    except ValueError:
        raise ChannelNotFound(public_id) from None
    channel = AlertChannel.objects.filter(tenant=current_tenant(), public_id=key).first()
    if channel is None:
        raise ChannelNotFound(public_id)
    return channel


def validate(channel: AlertChannel) -> AlertChannel:
    """Full validation (fields, typed config); raises ValidationError with per-field messages."""
    # `kind` and `config` are checked by clean() through alerts.config, whose messages say what is
    # wrong; the model fields' own "not a valid choice" / "cannot be blank" would only repeat them.
    channel.full_clean(exclude=["tenant", "kind", "config"])
    return channel


def _apply(channel: AlertChannel, data: dict) -> None:
    unknown = sorted(set(data) - set(EDITABLE))
    if unknown:
        raise ValidationError({name: "not an editable field" for name in unknown})
    for name, value in data.items():
        setattr(channel, name, value)


def schedule_digest(channel: AlertChannel, now: datetime | None = None) -> None:
    """Set when the channel's next digest is due (none when it has no digest)."""
    now = now or timezone.now()
    if channel.digest == DigestFrequency.NONE:
        channel.next_digest_at = None
    elif channel.next_digest_at is None:
        channel.next_digest_at = digests.next_digest_at(channel.digest, current_tenant().timezone, now)


@transaction.atomic
def create_channel(**data) -> AlertChannel:
    channel = AlertChannel(tenant=current_tenant())
    _apply(channel, data)
    validate(channel)
    schedule_digest(channel)
    channel.save()
    return channel


@transaction.atomic
def update_channel(public_id, **data) -> AlertChannel:
    channel = get_channel(public_id)
    old_digest = channel.digest
    was_enabled = channel.enabled
    _apply(channel, data)
    validate(channel)
    if channel.digest != old_digest:
        channel.next_digest_at = None
    if channel.enabled and not was_enabled:
        # Turned back on by a person: start counting failures afresh.
        channel.consecutive_failures, channel.auto_disabled_at = 0, None
    schedule_digest(channel)
    channel.save()
    return channel


@transaction.atomic
def delete_channel(public_id) -> None:
    get_channel(public_id).delete()


def rotate_signing_secret(public_id) -> AlertChannel:
    """A new secret for a webhook channel; the old one stops at once (receivers verify with the new one)."""
    channel = get_channel(public_id)
    if channel.kind != ChannelKind.WEBHOOK:
        raise NotSigned(public_id)
    channel.signing_secret = new_signing_secret()
    channel.save(update_fields=["signing_secret", "updated_at"])
    return channel


@dataclass(frozen=True)
class TestResult:
    ok: bool
    message: str
    status: int | None = None


def _test_notice(channel: AlertChannel, message_id: str, now: datetime) -> Notice:
    tenant = current_tenant()
    url = dashboard_url(tenant)
    sample = AnomalyInfo(
        id=f"test-{message_id}",
        detector="duplicate_charge",
        severity="high",
        status="open",
        title="Test alert from BillingWatch",
        summary=f"This is a test of the channel {channel.name!r}. No anomaly happened.",
        customer_id="cus_test",
        livemode=False,
        amount=1234,
        currency="usd",
        first_seen_at=now,
        last_seen_at=now,
        url=url,
    )
    return Notice(
        kind="test",
        message_id=message_id,
        tenant_name=tenant.name,
        tenant_slug=tenant.slug,
        dashboard_url=url,
        created=now,
        anomalies=[sample],
        signing_secret=channel.signing_secret,
    )


def send_test(public_id) -> TestResult:
    """Send a test message now and say what happened; logged like any delivery.

    It goes out even if the channel is disabled (that is how one checks a fix
    before turning it back on) and never counts towards auto-disabling.
    """
    channel = get_channel(public_id)
    now = timezone.now()
    delivery = AlertDelivery.objects.create(
        tenant=channel.tenant, channel=channel, kind=NoticeKind.TEST, seq=0, status=DeliveryStatus.SENDING, attempts=1,
        next_attempt_at=None,
    )
    try:
        status = get_transport(channel.kind)(_test_notice(channel, str(delivery.public_id), now), channel.config)
    except TransportError as exc:
        AlertDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED, response_status=exc.status, error=exc.message
        )
        record_failure(channel, exc.message, now, final=False)
        kind = "permanent" if exc.permanent else "temporary"
        return TestResult(False, f"Test alert failed ({kind}): {exc.message}", exc.status)
    AlertDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SENT, response_status=status, sent_at=now)
    AlertChannel.objects.filter(pk=channel.pk).update(last_sent_at=now)
    return TestResult(True, f"Test alert sent to {channel.name} (status {status}).", status)
