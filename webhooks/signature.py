"""Stripe-Signature verification against an endpoint's active secrets."""

import time

import stripe

from webhooks.models import RejectionReason


class SignatureRejected(Exception):
    def __init__(self, reason: RejectionReason, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def _timestamp_of(header: str) -> int:
    """The `t=` of the header, parsed exactly as stripe-python parses it."""
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "t":
            return int(value)
    raise ValueError("no timestamp")


def verify_signature(body_text: str, header: str | None, secrets: list[str], tolerance: int, now=None) -> None:
    """Raise SignatureRejected unless one active secret signed this exact body recently.

    stripe-python checks the signature, but its age check is one-sided (a
    timestamp in the future passes) and optional; we check both directions.
    """
    if not header:
        raise SignatureRejected(RejectionReason.SIGNATURE_MISSING, "missing Stripe-Signature header")
    try:
        timestamp = _timestamp_of(header)
    except ValueError:
        raise SignatureRejected(RejectionReason.SIGNATURE_MALFORMED, "malformed Stripe-Signature header") from None
    if "v1=" not in header:
        raise SignatureRejected(RejectionReason.SIGNATURE_MALFORMED, "Stripe-Signature header has no v1 signature")
    if not secrets:
        raise SignatureRejected(
            RejectionReason.NO_ACTIVE_SECRET, "no active signing secret is configured for this endpoint"
        )
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(body_text, header, secret, tolerance=None)
            break
        except stripe.SignatureVerificationError:
            continue
    else:
        raise SignatureRejected(
            RejectionReason.SIGNATURE_MISMATCH, "signature does not match any active signing secret"
        )
    if abs((now or time.time()) - timestamp) > tolerance:
        raise SignatureRejected(
            RejectionReason.TIMESTAMP_OUT_OF_TOLERANCE, f"signature timestamp is more than {tolerance} s from now"
        )
