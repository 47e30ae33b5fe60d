"""The generic signed webhook.

Body: JSON {"id", "type": "anomaly.<kind>", "created", "tenant", "data": {"anomalies": [...]}}.
Header: `BillingWatch-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the
channel's signing secret>`: the same scheme as Stripe-Signature, so a receiver verifies it
the same way (recompute, compare in constant time, refuse a t too far from its clock).
`BillingWatch-Delivery` repeats the id: receivers can drop a message they already have.
"""

import hashlib
import hmac
import json
import time

from alerts.transports.base import Notice, post

SIGNATURE_HEADER = "BillingWatch-Signature"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """What a receiver does (used by the tests as the receiver)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


def body(notice: Notice) -> dict:
    data = {"anomalies": [a.as_json() for a in notice.anomalies]}
    if notice.digest is not None:
        data["digest"] = notice.digest
    return {
        "id": notice.message_id,
        "type": f"anomaly.{notice.kind}" if notice.kind not in ("digest", "test") else notice.kind,
        "created": int(notice.created.timestamp()),
        "tenant": notice.tenant_slug,
        "data": data,
    }


def send(notice: Notice, config: dict) -> int:
    raw = json.dumps(body(notice), separators=(",", ":"), default=str).encode()
    headers = {SIGNATURE_HEADER: sign(notice.signing_secret, raw), "BillingWatch-Delivery": notice.message_id}
    return post(config["url"], {}, headers=headers, body=raw)
