"""Slack incoming webhooks: one attachment per anomaly, in the severity's colour."""

from alerts.transports.base import COLOURS, Notice, post

MAX_ATTACHMENTS = 20


def _attachment(anomaly) -> dict:
    fields = [
        {"title": "Severity", "value": anomaly.severity, "short": True},
        {"title": "Detector", "value": anomaly.detector, "short": True},
    ]
    if anomaly.customer_id:
        fields.append({"title": "Customer", "value": anomaly.customer_id, "short": True})
    if anomaly.amount_display:
        fields.append({"title": "Amount", "value": anomaly.amount_display, "short": True})
    return {
        "color": COLOURS[anomaly.severity],
        "title": anomaly.title,
        "title_link": anomaly.url,
        "text": anomaly.summary,
        "fields": fields,
        "footer": "BillingWatch" + ("" if anomaly.livemode else " · test mode"),
    }


def payload(notice: Notice) -> dict:
    shown = notice.anomalies[:MAX_ATTACHMENTS]
    text = notice.headline
    if len(notice.anomalies) > len(shown):
        text += f" (and {len(notice.anomalies) - len(shown)} more: {notice.dashboard_url})"
    return {"text": text, "attachments": [_attachment(a) for a in shown]}


def send(notice: Notice, config: dict) -> int:
    return post(config["url"], payload(notice))
