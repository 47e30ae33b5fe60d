"""Building real-shaped Stripe events for detector tests, and running them through the pipeline.

Events start from the real payloads in shared/stripe-fixtures (so detectors
see what Stripe sends), with the fields a scenario needs overridden. They go
through the same store and worker as production: `store(...)` then
`process()`.
"""

import copy
import itertools
import json
from datetime import UTC, datetime, timedelta

from tenants.scope import tenant_scope
from tests.conftest import RUBY_MOCK_EVENTS
from webhooks.models import StripeEvent
from webhooks.payloads import read_event, validate_event
from webhooks.store import store_event
from webhooks.worker import drain

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
_ids = itertools.count(1)
_templates: dict[str, dict] = {}

# Which fixture file shapes each event type.
TEMPLATE_OF = {
    "charge.succeeded": "charge.succeeded.json",
    "charge.failed": "charge.failed.json",
    "charge.refunded": "charge.refunded.json",
    "charge.dispute.created": "charge.dispute.created.json",
    "invoice.paid": "invoice.paid.json",
    "invoice.payment_succeeded": "invoice.payment_succeeded.json",
    "invoice.payment_failed": "invoice.payment_failed.json",
    "invoice.finalized": "invoice.finalized.json",
    "invoice.created": "invoice.created.json",
    "customer.subscription.created": "customer.subscription.created.json",
    "customer.subscription.updated": "customer.subscription.updated.json",
    "customer.subscription.deleted": "customer.subscription.deleted.json",
}


def _template(event_type: str) -> dict:
    name = TEMPLATE_OF.get(event_type, "charge.succeeded.json")
    if name not in _templates:
        _templates[name] = json.loads((RUBY_MOCK_EVENTS / name).read_text())
    return copy.deepcopy(_templates[name])


def event(event_type: str, at: datetime, *, livemode: bool = True, previous_attributes=None, **fields) -> dict:
    """A Stripe event of `event_type` at `at`, its data.object updated with `fields`.

    A field set to None is removed from the object (to build new-API shapes).
    """
    payload = _template(event_type)
    n = next(_ids)
    payload.update(id=f"evt_t{n}", type=event_type, created=int(at.timestamp()), livemode=livemode)
    obj = payload["data"]["object"]
    prefix = {"charge": "ch", "invoice": "in", "subscription": "sub", "dispute": "dp"}.get(obj.get("object"), "obj")
    obj["id"] = f"{prefix}_t{n}"
    obj["livemode"] = livemode
    for key, value in fields.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    if previous_attributes is not None:
        payload["data"]["previous_attributes"] = previous_attributes
    else:
        payload["data"].pop("previous_attributes", None)
    validate_event(payload)
    return payload


def store(tenant, *payloads: dict, received_at: datetime | None = None, source: str = "import") -> list[str]:
    with tenant_scope(tenant):
        for payload in payloads:
            store_event(
                tenant=tenant,
                endpoint=None,
                facts=read_event(payload),
                payload_json=json.dumps(payload),
                source=source,
                received_at=received_at,
            )
    return [p["id"] for p in payloads]


def process() -> int:
    return drain()


def reprocess_all(tenant) -> int:
    """Set every event pending again (what a replay does) and process them."""
    from django.utils import timezone

    with tenant_scope(tenant):
        StripeEvent.objects.update(status="pending", available_at=timezone.now(), attempts=0)
    return drain()


def anomalies_of(tenant, detector: str, **filters) -> list:
    from anomalies.models import Anomaly

    with tenant_scope(tenant):
        return list(Anomaly.objects.filter(detector=detector, **filters).order_by("id"))


def detector_errors_of(tenant, detector: str) -> list[dict]:
    """The errors `detector` recorded on the tenant's events (a detector must never raise on them)."""
    with tenant_scope(tenant):
        rows = StripeEvent.objects.values_list("detector_errors", flat=True)
        return [error for errors in rows for error in errors or [] if error.get("detector") == detector]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
