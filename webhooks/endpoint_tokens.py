"""Rotating an endpoint's URL token: the old URL stops working at once.

For a URL that leaked. Unlike a signing-secret rotation there is no overlap:
the point is that the old URL accepts nothing more. Until the tenant pastes
the new URL into Stripe, Stripe's deliveries get 404 and are retried for up to
three days, so nothing is lost if the tenant updates Stripe within that time.
"""

from webhooks.models import WebhookEndpoint, new_endpoint_token


def rotate_endpoint_token(endpoint: WebhookEndpoint) -> str:
    """Give `endpoint` a new random token; returns its new path."""
    endpoint.token = new_endpoint_token()
    # save() so this process's endpoint cache forgets the old token at once; other
    # web processes stop accepting it within BILLINGWATCH_ENDPOINT_CACHE_SECONDS.
    endpoint.save(update_fields=["token"])
    return endpoint.path
