"""The instance's health in one place, for the operators' status page in the admin.

Every number is one query, served by an index or a small table, so the page
stays fast with millions of events: the queue through its partial index on
available_at, failures through the partial index on failed events, the last
hour's ingest per tenant through (tenant, received_at).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, IntegerField, Min, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from tenants.models import Tenant
from webhooks.housekeeping import workers_seen
from webhooks.models import StripeEvent, WebhookRejection


@dataclass
class SystemStatus:
    now: datetime
    queued_events: int
    failed_events: int
    over_quota_events: int
    oldest_queued_age_seconds: float | None
    ingest_last_hour: list[tuple[str, int]]  # (tenant slug, events received), busiest first
    rejections_last_day: list[tuple[str, str, int]]  # (tenant slug, reason, count), most first
    workers: list[tuple[object, bool]]  # (WorkerHeartbeat, alive)
    deliveries: dict[str, int] = field(default_factory=dict)  # alert deliveries by status
    table_sizes: list[tuple[str, int]] = field(default_factory=list)  # (table, bytes), largest first

    @property
    def stale_workers(self) -> int:
        return sum(1 for _, alive in self.workers if not alive)


def system_status(now: datetime | None = None) -> SystemStatus:
    now = now or timezone.now()
    events = StripeEvent.all_tenants
    queue = events.filter(available_at__isnull=False).aggregate(n=Count("pk"), oldest=Min("received_at"))
    hour_ago = now - timedelta(hours=1)
    received = events.filter(tenant=OuterRef("pk"), received_at__gte=hour_ago).order_by().values("tenant")
    per_tenant = (
        Tenant.objects.annotate(
            n=Coalesce(Subquery(received.annotate(c=Count("pk")).values("c"), output_field=IntegerField()), 0)
        )
        .filter(n__gt=0)
        .order_by("-n", "slug")
        .values_list("slug", "n")
    )
    rejections = (
        WebhookRejection.all_tenants.filter(hour__gte=now - timedelta(hours=24))
        .values_list("tenant__slug", "reason")
        .annotate(total=Sum("count"))
        .order_by("-total", "tenant__slug", "reason")
    )
    return SystemStatus(
        now=now,
        queued_events=queue["n"],
        failed_events=events.filter(status=StripeEvent.Status.FAILED, available_at=None).count(),
        over_quota_events=events.filter(status=StripeEvent.Status.OVER_QUOTA).count(),
        oldest_queued_age_seconds=(now - queue["oldest"]).total_seconds() if queue["oldest"] else None,
        ingest_last_hour=list(per_tenant),
        rejections_last_day=list(rejections),
        workers=workers_seen(now),
        deliveries=_deliveries(),
        table_sizes=_table_sizes(),
    )


def _deliveries() -> dict[str, int]:
    from alerts.models import AlertDelivery

    counts = dict(
        AlertDelivery.all_tenants.filter(status__in=("pending", "sending", "failed"))
        .order_by().values_list("status").annotate(n=Count("pk"))
    )
    return {"pending": counts.get("pending", 0) + counts.get("sending", 0), "failed": counts.get("failed", 0)}


def _table_sizes() -> list[tuple[str, int]]:
    """Bytes per table with its indexes and TOAST (PostgreSQL); the whole file on SQLite."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname = current_schema() ORDER BY 2 DESC LIMIT 15"
            )
            return [(name, int(size)) for name, size in cursor.fetchall()]
        cursor.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        return [("(whole SQLite database)", int(cursor.fetchone()[0]))]
