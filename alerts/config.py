"""The typed configuration of each channel kind, validated on every save.

`clean_config(kind, config)` returns the normalised config or raises
ValidationError({"config": ...}) with a message that says what is wrong.
Unknown keys are refused, so a typo never silently drops a setting.
"""

import ipaddress
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

MAX_EMAIL_RECIPIENTS = 20
MAX_URL_LENGTH = 2000
ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")


def _fail(message: str):
    raise ValidationError({"config": message})


def _only_keys(config: dict, allowed: set[str]) -> None:
    if not isinstance(config, dict):
        _fail("must be a JSON object")
    unknown = sorted(set(config) - allowed)
    if unknown:
        _fail(f"unknown setting(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def check_url(url) -> str:
    """An absolute https URL (http only when allowed) with a host; a literal private IP is refused early."""
    if not isinstance(url, str) or not url.strip():
        _fail("'url' is required")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        _fail(f"'url' is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        _fail(f"'url' is not a valid URL: {exc}")
    allowed = {"https", "http"} if settings.BILLINGWATCH_ALERTS_ALLOW_HTTP else {"https"}
    if parts.scheme not in allowed:
        _fail("'url' must start with https://")
    if not parts.hostname:
        _fail("'url' has no host name")
    if parts.username or parts.password:
        _fail("'url' must not contain a user name or password")
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return url
    if not settings.BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS and not address.is_global:
        _fail("'url' points to a private, loopback or reserved address")
    return url


def _email(config: dict) -> dict:
    _only_keys(config, {"to"})
    to = config.get("to")
    if isinstance(to, str):
        to = [part.strip() for part in to.split(",") if part.strip()]
    if not isinstance(to, list) or not to:
        _fail("'to' needs at least one e-mail address")
    if len(to) > MAX_EMAIL_RECIPIENTS:
        _fail(f"'to' has more than {MAX_EMAIL_RECIPIENTS} addresses")
    for address in to:
        try:
            if not isinstance(address, str):
                raise ValidationError("not a string")
            validate_email(address)
        except ValidationError:
            _fail(f"{address!r} is not a valid e-mail address")
    return {"to": list(dict.fromkeys(a.strip().lower() for a in to))}


def _url_only(config: dict) -> dict:
    _only_keys(config, {"url"})
    return {"url": check_url(config.get("url"))}


def _pagerduty(config: dict) -> dict:
    _only_keys(config, {"routing_key"})
    key = config.get("routing_key")
    if not isinstance(key, str) or not ROUTING_KEY.match(key.strip()):
        _fail("'routing_key' must be the 32-character integration key of a PagerDuty Events API v2 integration")
    return {"routing_key": key.strip()}


_CLEANERS = {"email": _email, "slack": _url_only, "discord": _url_only, "webhook": _url_only, "pagerduty": _pagerduty}


def clean_config(kind: str, config) -> dict:
    if kind not in _CLEANERS:
        raise ValidationError({"kind": f"unknown channel kind {kind!r}; use one of {', '.join(_CLEANERS)}"})
    return _CLEANERS[kind](config if config is not None else {})


# Settings that are credentials: whoever holds a Slack or Discord webhook URL or a
# PagerDuty routing key can post into the tenant's channel or page its on-call.
_CREDENTIALS = {"slack": "url", "discord": "url", "pagerduty": "routing_key"}
MASK = "…"


def masked_config(kind: str, config) -> dict:
    """The config as lists and detail pages show it: credentials reduced to a hint.

    A routing key becomes `…` + its last 4 characters; a Slack or Discord URL keeps its
    host and the last 4 characters (`hooks.slack.com/…wxyz`). Neither is a valid
    setting, so a masked value sent back is refused rather than saved over the real one.
    Webhook URLs are shown in full (messages to them are authenticated by the signing secret).
    """
    config = dict(config or {})
    name = _CREDENTIALS.get(kind)
    value = config.get(name) if name else None
    if isinstance(value, str) and value:
        host = (urlsplit(value).hostname or "") + "/" if name == "url" else ""
        config[name] = f"{host}{MASK}{value[-4:]}"
    return config


def secret_hint(secret: str) -> str | None:
    """`bwsec_…` + the last 4 characters: enough to tell two secrets apart, useless to sign."""
    return f"bwsec_{MASK}{secret[-4:]}" if secret else None
