"""Retention: processed events older than the tenant's plan allows are deleted.

What is never deleted: events not yet processed (pending, processing, failed,
over_quota: they still have work to do) and the evidence of anomalies that are
still open, acknowledged or snoozed (the events their evidence names), so an
anomaly someone is looking at keeps its proof. Age is measured from
`received_at` (for an import, the import), which the (tenant, received_at)
index serves. Deleted in chunks so a first prune of a large table never holds
long locks. Tenants without a plan, or whose plan keeps events forever, are
left alone.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from anomalies.models import ACTIVE_STATUSES, Anomaly
from tenants.models import Tenant
from tenants.scope import tenant_scope
from webhooks.models import StripeEvent

CHUNK = 2000


def evidence_of_active_anomalies() -> set[str]:
    """Stripe event ids named by the tenant's active anomalies (call in the tenant's scope)."""
    keep: set[str] = set()
    for evidence in Anomaly.objects.filter(status__in=ACTIVE_STATUSES).values_list("evidence", flat=True):
        ids = evidence.get("event_ids", []) if isinstance(evidence, dict) else []
        keep.update(i for i in ids if isinstance(i, str))
    return keep


def prune_tenant(tenant: Tenant, now: datetime | None = None, dry_run: bool = False) -> int:
    """Delete (or count, with dry_run) the tenant's processed events past its retention."""
    days = tenant.plan.retention_days if tenant.plan_id else None
    if days is None:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = 0
    with tenant_scope(tenant):
        keep = evidence_of_active_anomalies()
        expired = StripeEvent.objects.filter(status=StripeEvent.Status.PROCESSED, received_at__lt=cutoff)
        last_pk = 0
        while True:
            rows = list(expired.filter(pk__gt=last_pk).order_by("pk").values_list("pk", "stripe_id")[:CHUNK])
            if not rows:
                return deleted
            last_pk = rows[-1][0]
            doomed = [pk for pk, stripe_id in rows if stripe_id not in keep]
            if doomed and not dry_run:
                with transaction.atomic():
                    # Status checked again: an event reprocessed meanwhile is not deleted under the worker.
                    StripeEvent.objects.filter(pk__in=doomed, status=StripeEvent.Status.PROCESSED).delete()
            deleted += len(doomed)


def prune(now: datetime | None = None, dry_run: bool = False) -> dict[str, int]:
    """Every tenant with a retention limit; returns events deleted per tenant slug (those with any)."""
    result = {}
    for tenant in Tenant.objects.filter(plan__retention_days__isnull=False).select_related("plan").order_by("pk"):
        count = prune_tenant(tenant, now, dry_run)
        if count:
            result[tenant.slug] = count
    return result
