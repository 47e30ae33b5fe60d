"""The demo tenant a fresh clone starts with, so a newcomer sees something at once.

30 days of simulated Stripe history (anomalies.simulation) with a few injected
anomalies, imported like any other history, so the detectors raise them.
Idempotent: the simulated event ids are fixed, so a second run stores nothing.
"""

import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from tenants.models import Membership, Tenant
from tenants.onboarding import create_tenant
from tenants.scope import tenant_scope
from webhooks.importing import import_files
from webhooks.models import WebhookEndpoint

DEMO_SLUG = "demo"
DEMO_WEBHOOK_SECRET = "whsec_demo_local_only_0123456789"  # a local demo, never a real Stripe secret
ADMIN_USERNAME = "admin"
DEMO_SEED = 7
DEMO_DAYS = 30
DEMO_INJECTIONS = ("duplicate_charge", "negative_invoice", "dunning_failure", "refund_spike", "card_testing")


@dataclass(frozen=True)
class DemoInfo:
    admin_username: str
    admin_password: str | None  # None when the password was set elsewhere
    tenant: Tenant
    webhook_path: str
    webhook_secret: str
    events_stored: int


def _admin_password() -> str:
    configured = os.environ.get("BILLINGWATCH_ADMIN_PASSWORD")
    if configured:
        return configured
    path = settings.LOCAL_DIR / "admin_password"
    if not path.exists():
        settings.LOCAL_DIR.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def ensure_demo() -> DemoInfo:
    user_model = get_user_model()
    password = _admin_password()
    with transaction.atomic():
        admin = user_model.objects.filter(username=ADMIN_USERNAME).first()
        if admin is None:
            admin = user_model.objects.create_superuser(ADMIN_USERNAME, "admin@localhost", password)
        elif not admin.check_password(password):
            password = None  # someone changed it: do not print a wrong one
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant = create_tenant("Demo Store", slug=DEMO_SLUG, webhook_secret=DEMO_WEBHOOK_SECRET).tenant
        with tenant_scope(tenant):
            Membership.objects.get_or_create(tenant=tenant, user=admin, defaults={"role": Membership.Role.OWNER})
            endpoint = WebhookEndpoint.objects.order_by("created_at").first()
    sample = _simulated_history()
    try:
        report = import_files(tenant, [sample])
    finally:
        sample.unlink()
    return DemoInfo(ADMIN_USERNAME, password, tenant, endpoint.path, DEMO_WEBHOOK_SECRET, report.stored)


def _simulated_history() -> Path:
    """30 days of history ending at the last whole hour, as a JSON-lines file."""
    from anomalies.simulation import simulate, to_jsonl

    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    events, _ = simulate(DEMO_SEED, DEMO_DAYS, end, inject=DEMO_INJECTIONS)
    handle = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
    with handle:
        handle.write(to_jsonl(events))
    return Path(handle.name)
