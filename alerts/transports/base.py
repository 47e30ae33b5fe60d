"""What every transport shares: the notice it renders, its error, and the HTTP call."""

import json
from dataclasses import dataclass, field
from datetime import datetime

import requests

from alerts import safehttp

# Severity colours shared by Slack, Discord and the e-mail.
COLOURS = {"low": "#6b7280", "medium": "#d97706", "high": "#dc2626", "critical": "#7f1d1d"}
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
KIND_WORDS = {
    "opened": "New anomaly",
    "escalated": "Anomaly escalated",
    "resolved": "Anomaly resolved",
    "reminder": "Still open",
    "test": "Test alert",
}


class TransportError(Exception):
    """A failed send. `permanent` failures are not retried (bad address, 4xx)."""

    def __init__(self, message: str, *, permanent: bool = False, status: int | None = None):
        super().__init__(message)
        self.message = message[:2000]
        self.permanent = permanent
        self.status = status


@dataclass(frozen=True)
class AnomalyInfo:
    id: str
    detector: str
    severity: str
    status: str
    title: str
    summary: str
    customer_id: str
    livemode: bool
    amount: int | None
    currency: str
    first_seen_at: datetime
    last_seen_at: datetime
    url: str

    @property
    def amount_display(self) -> str:
        return format_amount(self.amount, self.currency)

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "detector": self.detector,
            "severity": self.severity,
            "status": self.status,
            "title": self.title,
            "summary": self.summary,
            "customer_id": self.customer_id,
            "livemode": self.livemode,
            "amount": self.amount,
            "currency": self.currency,
            "first_seen_at": self.first_seen_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "url": self.url,
        }


@dataclass(frozen=True)
class Notice:
    """One message to one channel: a kind and the anomalies it is about (several when grouped)."""

    kind: str
    message_id: str
    tenant_name: str
    tenant_slug: str
    dashboard_url: str
    created: datetime
    anomalies: list[AnomalyInfo] = field(default_factory=list)
    digest: dict | None = None
    signing_secret: str = ""

    @property
    def severity(self) -> str:
        from anomalies.models import SEVERITY_RANK

        if not self.anomalies:
            return "low"
        return max((a.severity for a in self.anomalies), key=lambda s: SEVERITY_RANK[s])

    @property
    def headline(self) -> str:
        if self.kind == "digest":
            return f"BillingWatch digest for {self.tenant_name}"
        word = KIND_WORDS.get(self.kind, self.kind)
        if len(self.anomalies) == 1:
            return f"[{self.severity.upper()}] {word}: {self.anomalies[0].title}"
        return f"[{self.severity.upper()}] {len(self.anomalies)} new anomalies for {self.tenant_name}"


def format_amount(amount, currency: str) -> str:
    if amount is None or not currency:
        return ""
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return f"{amount:,} {currency.upper()}"
    return f"{amount / 100:,.2f} {currency.upper()}"


def post(url: str, payload: dict, headers: dict | None = None, body: bytes | None = None) -> int:
    """POST JSON through safehttp and turn every outcome into a status or a TransportError."""
    body = body if body is not None else json.dumps(payload, separators=(",", ":")).encode()
    try:
        result = safehttp.post_json(url, body, headers)
    except safehttp.UnsafeURL as exc:
        raise TransportError(str(exc), permanent=True) from None
    except requests.Timeout:
        raise TransportError("the receiver did not answer in time") from None
    except requests.RequestException as exc:
        raise TransportError(f"could not connect: {type(exc).__name__}: {exc}") from None
    status = result.status
    excerpt = result.body[:300].decode("utf-8", "replace")
    if 200 <= status < 300:
        return status
    if 300 <= status < 400:
        raise TransportError(
            f"the receiver answered {status} (a redirect); redirects are not followed, use the final URL",
            permanent=True,
            status=status,
        )
    permanent = 400 <= status < 500 and status not in (408, 429)
    raise TransportError(f"the receiver answered {status}: {excerpt}", permanent=permanent, status=status)
