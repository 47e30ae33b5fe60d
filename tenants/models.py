import hashlib
import hmac
import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from tenants.managers import TenantOwnedModel


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known IANA time zone")


class Plan(models.Model):
    """What a tenant may use: events processed per month and how long events are kept."""

    name = models.CharField(max_length=40, unique=True)
    monthly_event_quota = models.PositiveBigIntegerField(
        null=True, blank=True,
        help_text="Events processed per calendar month (UTC). Empty: no limit. Events over it are stored but held.",
    )
    retention_days = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Processed events received more than this many days ago are pruned. Empty: kept forever.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Tenant(models.Model):
    """One business watched by this instance. Not tenant-owned: it is the tenant."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    # No plan: no quota and no retention limit (the embedded default, and the demo).
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="tenants")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    is_active = models.BooleanField(default=True)
    # Webhook rate limit overrides; empty means the instance default.
    rate_limit_per_second = models.FloatField(null=True, blank=True)
    rate_limit_burst = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the worker next runs this tenant's periodic scans; claimed with a
    # conditional UPDATE so two workers never scan one tenant at once.
    next_scan_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def effective_rate_limit(self) -> tuple[float, int]:
        return (
            self.rate_limit_per_second or settings.BILLINGWATCH_RATE_LIMIT_PER_SECOND,
            self.rate_limit_burst or settings.BILLINGWATCH_RATE_LIMIT_BURST,
        )


class Membership(TenantOwnedModel):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        VIEWER = "viewer"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user")]

    def __str__(self):
        return f"{self.user} · {self.tenant} ({self.role})"


API_KEY_PREFIX = "bw_"


def hash_api_secret(secret: str) -> str:
    # The secret is 32 random bytes, so a fast hash is enough: there is nothing
    # to brute-force, unlike a password.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(TenantOwnedModel):
    """An API credential `bw_<prefix>_<secret>`; only the secret's hash is kept."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # Looked up before the tenant is known, hence globally unique: the key
    # itself is what selects the tenant.
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} ({API_KEY_PREFIX}{self.prefix}_…)"

    @classmethod
    def issue(cls, tenant: Tenant, name: str, read_only: bool = False) -> tuple["ApiKey", str]:
        """Create a key and return it with its full text, which is never stored."""
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        key = cls.objects.create(
            tenant=tenant, name=name, prefix=prefix, secret_hash=hash_api_secret(secret), read_only=read_only
        )
        return key, f"{API_KEY_PREFIX}{prefix}_{secret}"

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, hash_api_secret(secret))


class MonthlyUsage(TenantOwnedModel):
    """Events a tenant had processed (and held over its quota) in one calendar month (UTC)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage")
    month = models.DateField(help_text="First day of the month")
    processed = models.PositiveBigIntegerField(default=0)
    # Events stored but not processed because the quota was reached; released when
    # the plan is raised or the month rolls over.
    held = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "month"], name="usage_one_row_per_month")]
        ordering = ["-month"]

    def __str__(self):
        return f"{self.tenant} {self.month:%Y-%m}: {self.processed} processed, {self.held} held"
