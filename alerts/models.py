"""Alert channels (where a tenant wants to hear about anomalies) and the delivery log/queue.

The business rules live in plain modules: alerts.channels (create, update,
validate, send a test), alerts.notices (which notices an anomaly change
creates), alerts.dispatch (the worker's sending loop), alerts.digests.
"""

import secrets
import uuid

from django.db import models

from anomalies.models import Anomaly, Severity
from tenants.managers import TenantOwnedModel
from tenants.models import Tenant


class ChannelKind(models.TextChoices):
    EMAIL = "email"
    SLACK = "slack"
    DISCORD = "discord"
    WEBHOOK = "webhook"
    PAGERDUTY = "pagerduty", "PagerDuty"


class ModeFilter(models.TextChoices):
    LIVE = "live", "Live mode only"
    TEST = "test", "Test mode only"
    BOTH = "both", "Live and test mode"


class DigestFrequency(models.TextChoices):
    NONE = "none", "No digest"
    DAILY = "daily"
    WEEKLY = "weekly"


class AlertChannel(TenantOwnedModel):
    public_id = models.UUIDField(default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alert_channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=12, choices=ChannelKind.choices)
    # Typed per kind (alerts.config): {"to": [...]} for email, {"url": ...} for
    # Slack, Discord and webhooks, {"routing_key": ...} for PagerDuty.
    config = models.JSONField(default=dict)
    # HMAC key of the signed webhook (BillingWatch-Signature); empty for other kinds.
    signing_secret = models.CharField(max_length=80, blank=True, default="", editable=False)
    min_severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.MEDIUM)
    detectors = models.JSONField(default=list, blank=True, help_text="Only these detectors; empty means all")
    mode = models.CharField(max_length=4, choices=ModeFilter.choices, default=ModeFilter.LIVE)
    send_resolved = models.BooleanField(default=False, help_text="Also send a notice when an anomaly is resolved")
    enabled = models.BooleanField(default=True)
    # Quiet hours in the tenant's time zone: non-critical notices wait until
    # they end. start > end spans midnight (22:00-07:00).
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    digest = models.CharField(max_length=6, choices=DigestFrequency.choices, default=DigestFrequency.NONE)
    next_digest_at = models.DateTimeField(null=True, blank=True, editable=False)

    # What the tenant sees about the channel's health.
    last_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, default="", editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    auto_disabled_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Set when repeated permanent failures turned the channel off"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "public_id"], name="channel_unique_public_id")]
        indexes = [
            # The notice hook's one query: a tenant's enabled channels. (Digests
            # due are found by a scan of this small table, claimed like scans.)
            models.Index(fields=["tenant", "enabled"], name="channel_enabled"),
        ]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def auto_disabled(self) -> bool:
        return not self.enabled and self.auto_disabled_at is not None

    def clean(self):
        from alerts.config import clean_config
        from anomalies.registry import load_detectors

        self.config = clean_config(self.kind, self.config)
        errors = {}
        if not isinstance(self.detectors, list) or not all(isinstance(d, str) for d in self.detectors):
            errors["detectors"] = "must be a list of detector names"
        else:
            unknown = sorted(set(self.detectors) - set(load_detectors()))
            if unknown:
                errors["detectors"] = f"unknown detector(s): {', '.join(unknown)}"
        if (self.quiet_start is None) != (self.quiet_end is None):
            errors["quiet_end"] = "quiet hours need both a start and an end"
        elif self.quiet_start is not None and self.quiet_start == self.quiet_end:
            errors["quiet_end"] = "quiet hours must not start and end at the same time"
        if self.digest != DigestFrequency.NONE and self.kind != ChannelKind.EMAIL:
            errors["digest"] = "digests are e-mails: only e-mail channels can receive them"
        if errors:
            from django.core.exceptions import ValidationError

            raise ValidationError(errors)

    def save(self, *args, **kwargs):
        # Validated on every save, whoever saves (admin, API, dashboard, a shell).
        from alerts.config import clean_config

        self.config = clean_config(self.kind, self.config)
        if self.kind == ChannelKind.WEBHOOK and not self.signing_secret:
            self.signing_secret = new_signing_secret()
        super().save(*args, **kwargs)


def new_signing_secret() -> str:
    return "bwsec_" + secrets.token_urlsafe(32)


class NoticeKind(models.TextChoices):
    OPENED = "opened"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    REMINDER = "reminder"
    DIGEST = "digest"
    TEST = "test"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a worker; the lease ends at next_attempt_at
    SENT = "sent"
    FAILED = "failed"  # retried when next_attempt_at is set, final otherwise
    SKIPPED = "skipped"  # nothing to say any more (resolved, acknowledged, channel off)


class AlertDelivery(TenantOwnedModel):
    """One notice to one channel; the table is also the sending queue.

    A row is claimable when `next_attempt_at` is in the past (pending, a retry,
    or a claim whose lease ran out). `seq` tells notices of one kind apart: the
    severity rank for escalations, the count for reminders, 0 otherwise, so the
    same change can never queue the same notice twice.
    """

    public_id = models.UUIDField(default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alert_deliveries")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    anomaly = models.ForeignKey(Anomaly, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=10, choices=NoticeKind.choices)
    seq = models.PositiveIntegerField(default=0)
    severity = models.CharField(max_length=10, choices=Severity.choices, blank=True, default="")
    status = models.CharField(max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Content fixed when queued (digests), so a retry sends the same thing.
    payload = models.JSONField(default=dict, blank=True)
    # Rows sent together in one grouped message share this id.
    message_id = models.UUIDField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "alert deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "anomaly", "channel", "kind", "seq"], name="delivery_unique_notice"
            ),
            models.UniqueConstraint(fields=["tenant", "public_id"], name="delivery_unique_public_id"),
        ]
        indexes = [
            # The sending queue, across tenants on purpose (the same documented
            # exception as StripeEvent's event_queue): workers claim the oldest
            # due rows of every tenant. Sent and final rows leave it.
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_queue",
                condition=models.Q(next_attempt_at__isnull=False),
            ),
            # A channel's log, and the pending rows a grouped message gathers.
            models.Index(fields=["tenant", "channel", "status", "created_at"], name="delivery_by_channel"),
        ]

    def __str__(self):
        return f"{self.kind} → {self.channel_id} ({self.status})"
