import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from tenants.managers import TenantOwnedModel
from tenants.models import Tenant


class Severity(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITY_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}


class AnomalyStatus(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"


# While an anomaly is in one of these, new findings with its fingerprint update
# it; after resolve or false positive, a new finding opens a new anomaly.
ACTIVE_STATUSES = (AnomalyStatus.OPEN, AnomalyStatus.ACKNOWLEDGED, AnomalyStatus.SNOOZED)


class Anomaly(TenantOwnedModel):
    public_id = models.UUIDField(default=uuid.uuid4, editable=False)  # the id in URLs and the API
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="anomalies")
    livemode = models.BooleanField()
    detector = models.CharField(max_length=40)
    fingerprint = models.CharField(max_length=255)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    status = models.CharField(max_length=16, choices=AnomalyStatus.choices, default=AnomalyStatus.OPEN)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True, default="")
    customer_id = models.CharField(max_length=255, blank=True, default="")
    evidence = models.JSONField(default=dict)
    first_seen_at = models.DateTimeField(help_text="Event time of the first finding")
    last_seen_at = models.DateTimeField(help_text="Event time of the latest finding")
    occurrences = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True, default="")
    snoozed_until = models.DateTimeField(null=True, blank=True)
    snoozed_by = models.CharField(max_length=150, blank=True, default="")
    false_positive_at = models.DateTimeField(null=True, blank=True)
    false_positive_by = models.CharField(max_length=150, blank=True, default="")
    false_positive_reason = models.TextField(blank=True, default="")

    class Meta:
        verbose_name_plural = "anomalies"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "public_id"], name="anomaly_unique_public_id"),
            models.UniqueConstraint(
                fields=["tenant", "livemode", "detector", "fingerprint"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="anomaly_one_active_per_fingerprint",
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "livemode", "status", "last_seen_at"], name="anomaly_triage"),
            models.Index(fields=["tenant", "livemode", "detector", "fingerprint"], name="anomaly_by_fingerprint"),
            models.Index(fields=["tenant", "status", "snoozed_until"], name="anomaly_snoozed"),
        ]

    def __str__(self):
        return f"{self.detector}: {self.title}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class AnomalyOccurrence(TenantOwnedModel):
    """One distinct finding behind an anomaly, keyed so reprocessing cannot count it twice.

    The key hashes (livemode, detector, fingerprint, occurrence key); the
    occurrence key is chosen by the detector from the data (e.g. the later
    charge of a duplicate pair), not from the event being processed, so the
    same facts give the same key in any processing order.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    anomaly = models.ForeignKey(Anomaly, on_delete=models.CASCADE, related_name="occurrence_keys")
    key_hash = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key_hash"], name="occurrence_unique_key")]


class AnomalyStatusChange(TenantOwnedModel):
    """Append-only history of who moved an anomaly where, when and why."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    anomaly = models.ForeignKey(Anomaly, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, choices=AnomalyStatus.choices)
    to_status = models.CharField(max_length=16, choices=AnomalyStatus.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=150, help_text="user, API key or 'system'")
    reason = models.TextField(blank=True, default="")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "anomaly", "at"], name="status_change_history")]


class DetectorConfig(TenantOwnedModel):
    """A tenant's overrides of one detector: on/off and thresholds (validated by its schema)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="detector_configs")
    detector = models.CharField(max_length=40)
    enabled = models.BooleanField(default=True)
    thresholds = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "detector"], name="detector_config_unique")]

    def __str__(self):
        return f"{self.tenant} · {self.detector}"
