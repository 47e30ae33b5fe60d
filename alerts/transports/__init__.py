"""One small module per channel kind; `get_transport(kind)` returns its `send` function.

Every transport takes a Notice (plain data, no database access: transports
run in the sender's threads) and the channel's config, and either returns the
HTTP status (or 250 for mail) or raises TransportError(permanent=...).
"""

from importlib import import_module

from alerts.transports.base import Notice, TransportError  # noqa: F401

_MODULES = {
    "email": "alerts.transports.email",
    "slack": "alerts.transports.slack",
    "discord": "alerts.transports.discord",
    "webhook": "alerts.transports.webhook",
    "pagerduty": "alerts.transports.pagerduty",
}


def get_transport(kind: str):
    return import_module(_MODULES[kind]).send
