"""A signed test event sent through the real ingest path (the dashboard's "send a test event" button).

It is built like a Stripe test-mode event, signed with one of the endpoint's
active secrets and handed to `receive_webhook` exactly as the HTTP view would,
so it checks the token, the secret, the rate limit and the store. Test mode
(livemode false): it can never raise a live anomaly.
"""

import json
import secrets

import stripe
from django.utils import timezone

from webhooks.ingest import IngestResult, receive_webhook
from webhooks.models import SigningSecret, WebhookEndpoint

TEST_EVENT_TYPE = "charge.succeeded"
TEST_API_VERSION = "2024-06-20"


class NoActiveSecret(ValueError):
    """The endpoint has no signing secret to sign with (add Stripe's whsec_… first)."""


def build_test_event(now=None) -> dict:
    now = now or timezone.now()
    suffix = secrets.token_hex(8)
    return {
        "id": f"evt_bwtest_{suffix}",
        "object": "event",
        "type": TEST_EVENT_TYPE,
        "api_version": TEST_API_VERSION,
        "created": int(now.timestamp()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {
            "object": {
                "id": f"ch_bwtest_{suffix}",
                "object": "charge",
                "amount": 100,
                "amount_captured": 100,
                "currency": "usd",
                "customer": None,
                "description": "BillingWatch test event",
                "livemode": False,
                "paid": True,
                "status": "succeeded",
                "created": int(now.timestamp()),
            }
        },
    }


def send_test_event(endpoint: WebhookEndpoint) -> tuple[dict, IngestResult]:
    """Sign and deliver a test event to `endpoint`; returns the event and the ingest answer (in the tenant's scope)."""
    now = timezone.now()
    active = [s for s in SigningSecret.objects.filter(endpoint=endpoint).order_by("-created_at") if s.is_active(now)]
    if not active:
        raise NoActiveSecret("add the endpoint's Stripe signing secret (whsec_…) first: the test event is signed with it")
    event = build_test_event(now)
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(body, active[0].secret, timestamp=int(now.timestamp()))
    return event, receive_webhook(endpoint.token, body.encode(), header)
