"""PagerDuty Events API v2: trigger with dedup_key = the anomaly's id, resolve on resolve.

Each anomaly is its own incident, so a grouped notice sends one event per
anomaly. A trigger for an open incident's key is appended to it (PagerDuty
deduplicates), which also makes a retried send harmless.
"""

from django.conf import settings

from alerts.transports.base import Notice, post

PD_SEVERITY = {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}


def event(notice: Notice, anomaly, routing_key: str) -> dict:
    if notice.kind == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": anomaly.id}
    details = {"detector": anomaly.detector, "customer_id": anomaly.customer_id, "summary": anomaly.summary}
    if anomaly.amount_display:
        details["amount"] = anomaly.amount_display
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": anomaly.id,
        "payload": {
            "summary": anomaly.title[:1024],
            "source": f"billingwatch/{notice.tenant_slug}",
            "severity": PD_SEVERITY[anomaly.severity],
            "component": anomaly.detector,
            "class": "test" if notice.kind == "test" else "billing",
            "custom_details": details,
        },
        "links": [{"href": anomaly.url, "text": "Open in BillingWatch"}],
    }


def send(notice: Notice, config: dict) -> int:
    status = 0
    for anomaly in notice.anomalies:
        status = post(settings.BILLINGWATCH_ALERTS_PAGERDUTY_URL, event(notice, anomaly, config["routing_key"]))
    return status
