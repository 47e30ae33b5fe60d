"""Writes of the webhook pipeline: the event insert (the queue) and rejection counters.

Both are single INSERT ... ON CONFLICT statements that SQLite (3.35+) and
PostgreSQL run alike. The ORM has no "insert unless it exists and tell me
which happened", and catching IntegrityError costs a savepoint per request and
logs an error on PostgreSQL for every duplicate.
"""

from datetime import datetime

from django.db import connection
from django.utils import timezone

from tenants.managers import check_tenant_of
from webhooks.models import StripeEvent, WebhookRejection
from webhooks.payloads import EventFacts

_EVENT_COLUMNS = [
    "tenant",
    "endpoint",
    "stripe_id",
    "type",
    "api_version",
    "livemode",
    "created",
    "received_at",
    "source",
    "object_type",
    "object_id",
    "customer_id",
    "amount",
    "currency",
    "subscription_id",
    "payload",
    "status",
    "attempts",
    "available_at",
    "last_error",
    "detector_errors",
]


def _insert_event_sql() -> str:
    meta = StripeEvent._meta
    quote = connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in _EVENT_COLUMNS)
    placeholders = ", ".join(["%s"] * len(_EVENT_COLUMNS))
    return (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders}) "
        f"ON CONFLICT ({quote('tenant_id')}, {quote('stripe_id')}) DO NOTHING RETURNING {quote('id')}"
    )


def store_event(
    *, tenant, endpoint, facts: EventFacts, payload_json: str, source: str, received_at: datetime | None = None
) -> int | None:
    """Store the event as pending unless (tenant, stripe_id) exists: its new id, or None for a duplicate.

    `payload_json` is the event's JSON text, stored as is (it was just parsed,
    so it is valid); must run inside the tenant's scope.
    """
    check_tenant_of(StripeEvent(tenant=tenant))
    received_at = received_at or timezone.now()
    values = {
        "tenant": tenant.pk,
        "endpoint": endpoint.pk if endpoint else None,
        "stripe_id": facts.stripe_id,
        "type": facts.type,
        "api_version": facts.api_version,
        "livemode": facts.livemode,
        "created": facts.created,
        "received_at": received_at,
        "source": source,
        "object_type": facts.object_type[:60],
        "object_id": facts.object_id[:255],
        "customer_id": facts.customer_id[:255],
        "amount": facts.amount,
        "currency": facts.currency[:3],
        "subscription_id": facts.subscription_id[:255],
        "payload": payload_json,
        "status": StripeEvent.Status.PENDING,
        "attempts": 0,
        "available_at": received_at,
        "last_error": "",
        "detector_errors": "[]",
    }
    meta = StripeEvent._meta
    params = []
    for name in _EVENT_COLUMNS:
        value = values[name]
        if name in ("payload", "detector_errors"):
            params.append(value)  # already JSON text; both databases take it as is
        else:
            params.append(meta.get_field(name).get_db_prep_save(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(_insert_event_sql(), params)
        row = cursor.fetchone()
        return row[0] if row else None


def count_rejection(endpoint, reason: str) -> None:
    """Add one to the endpoint's counter for this hour and reason."""
    meta = WebhookRejection._meta
    table = connection.ops.quote_name(meta.db_table)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    hour_param = meta.get_field("hour").get_db_prep_save(hour, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, endpoint_id, hour, reason, count) VALUES (%s, %s, %s, %s, 1) "
            f"ON CONFLICT (tenant_id, endpoint_id, hour, reason) DO UPDATE SET count = {table}.count + 1",
            [endpoint.tenant_id, endpoint.pk, hour_param, str(reason)],
        )
