import hashlib
import secrets

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from tenants.managers import TenantOwnedModel
from tenants.models import Tenant

validate_signing_secret = RegexValidator(
    r"^whsec_[A-Za-z0-9+/=_-]{8,200}$",
    "A Stripe signing secret looks like whsec_ followed by letters and digits.",
)


def new_endpoint_token() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits


class WebhookEndpoint(TenantOwnedModel):
    """One URL a tenant registers in Stripe: /webhooks/stripe/<token>/."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    label = models.CharField(max_length=100, default="Stripe")
    # Looked up before the tenant is known (the token selects the tenant),
    # hence globally unique.
    token = models.CharField(max_length=64, unique=True, default=new_endpoint_token, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_received_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self):
        return f"{self.tenant} · {self.label}"

    @property
    def path(self) -> str:
        return f"/webhooks/stripe/{self.token}/"


class SigningSecret(TenantOwnedModel):
    """A `whsec_…` secret of an endpoint. Several may be active during a rotation."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="signing_secrets")
    secret = models.CharField(max_length=255, validators=[validate_signing_secret])
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Leave empty for no expiry.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "endpoint"], name="secret_by_endpoint")]

    def __str__(self):
        return f"secret {self.fingerprint}"

    @property
    def fingerprint(self) -> str:
        """Tells secrets apart without revealing them."""
        return hashlib.sha256(self.secret.encode()).hexdigest()[:10]

    def is_active(self, at=None) -> bool:
        return self.expires_at is None or self.expires_at > (at or timezone.now())


class RejectionReason(models.TextChoices):
    ENDPOINT_DISABLED = "endpoint_disabled"
    TENANT_DISABLED = "tenant_disabled"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    SIGNATURE_MISSING = "signature_missing"
    SIGNATURE_MALFORMED = "signature_malformed"
    SIGNATURE_MISMATCH = "signature_mismatch"
    TIMESTAMP_OUT_OF_TOLERANCE = "timestamp_out_of_tolerance"
    NO_ACTIVE_SECRET = "no_active_secret"
    INVALID_JSON = "invalid_json"
    NOT_AN_EVENT = "not_an_event"


class WebhookRejection(TenantOwnedModel):
    """Rejected deliveries of an endpoint, counted per hour and reason.

    Rejected requests are never stored as events; these counters are what the
    operator and the tenant see (a spike of signature_mismatch means the
    signing secret is wrong).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="rejections")
    hour = models.DateTimeField()
    reason = models.CharField(max_length=40, choices=RejectionReason.choices)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "endpoint", "hour", "reason"], name="rejection_unique_bucket")
        ]


class RateLimitBucket(TenantOwnedModel):
    """Token-bucket state of a tenant's webhook rate limit (database backend)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    tokens = models.FloatField()
    updated_at = models.FloatField(help_text="Unix time of the last refill")
    # Written by the same UPDATE that takes a token, so one statement both
    # decides and reports the decision.
    last_allowed = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="ratelimit_one_bucket_per_tenant")]


class StripeEvent(TenantOwnedModel):
    """A Stripe event, stored exactly once per tenant. The table is also the queue.

    Queue state lives in `status` and `available_at`: a row is claimable when
    `available_at` is in the past. Pending rows are available at once; a
    claimed row is available again when its lease runs out (a killed worker's
    batch is picked up again); a failed row when its retry is due; processed
    and finally failed rows have no `available_at` and leave the queue index.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        PROCESSED = "processed"
        FAILED = "failed"
        # Stored but not processed: the tenant's plan quota for the month was reached.
        OVER_QUOTA = "over_quota"

    class Source(models.TextChoices):
        WEBHOOK = "webhook"
        IMPORT = "import"
        BACKFILL = "backfill"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="stripe_events")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    stripe_id = models.CharField(max_length=255)
    type = models.CharField(max_length=100)
    api_version = models.CharField(max_length=40, null=True, blank=True)
    livemode = models.BooleanField()
    created = models.DateTimeField(help_text="Stripe's event time")
    received_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.WEBHOOK)
    object_type = models.CharField(max_length=60, blank=True, default="")
    object_id = models.CharField(max_length=255, blank=True, default="")
    customer_id = models.CharField(max_length=255, blank=True, default="")
    amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units")
    currency = models.CharField(max_length=3, blank=True, default="")
    subscription_id = models.CharField(max_length=255, blank=True, default="")
    payload = models.JSONField()

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    available_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # Detectors that raised on this event: [{"detector": name, "error": text}].
    # The event is still processed; the other detectors still ran.
    detector_errors = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "stripe_id"], name="event_unique_stripe_id")]
        indexes = [
            # The queue: only rows still to do are in it, so it stays small. The
            # one index that does not start with tenant, on purpose: workers
            # claim the oldest due events across all tenants, and with tenant
            # first every claim had to sort the whole backlog (a 50k backlog
            # drained at 2,167/s, 70% of it in claims; docs/performance.md).
            models.Index(
                fields=["available_at"],
                name="event_queue",
                condition=models.Q(available_at__isnull=False),
            ),
            models.Index(fields=["tenant", "livemode", "type", "created"], name="event_by_type_time"),
            # Held and failed events are few: releasing, retrying and counting them must not scan the tenant.
            models.Index(
                fields=["tenant", "received_at"],
                name="event_over_quota",
                condition=models.Q(status="over_quota"),
            ),
            models.Index(fields=["tenant", "received_at"], name="event_failed", condition=models.Q(status="failed")),
            models.Index(fields=["tenant", "received_at"], name="event_by_received"),
            # What detectors ask: this customer's / this subscription's / this
            # object's events of some types in a time window.
            models.Index(fields=["tenant", "livemode", "customer_id", "type", "created"], name="event_by_customer"),
            models.Index(
                fields=["tenant", "livemode", "subscription_id", "type", "created"], name="event_by_subscription"
            ),
            models.Index(fields=["tenant", "livemode", "object_id", "type"], name="event_by_object"),
            # Webhook deliveries by receipt time (lag and silence); imports stay out of it.
            models.Index(
                fields=["tenant", "livemode", "received_at"],
                name="event_webhook_received",
                condition=models.Q(source="webhook"),
            ),
        ]

    def __str__(self):
        return f"{self.stripe_id} {self.type}"

    @property
    def lease_until(self):
        """While processing, the claim's lease ends when the row becomes available again."""
        return self.available_at if self.status == self.Status.PROCESSING else None


class WorkerHeartbeat(models.Model):
    """A worker process says it is alive (instance-wide, not tenant-owned): the status page lists them."""

    identity = models.CharField(max_length=200, unique=True, help_text="host:pid")
    host = models.CharField(max_length=150)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_beat_at = models.DateTimeField()
    events_processed = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-last_beat_at"]

    def __str__(self):
        return self.identity


class PeriodicJob(models.Model):
    """When an instance-wide job (prune, releasing held events) runs next; claimed by one worker at a time."""

    name = models.CharField(max_length=60, unique=True)
    next_run_at = models.DateTimeField()
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_result = models.TextField(blank=True, default="")

    def __str__(self):
        return self.name
