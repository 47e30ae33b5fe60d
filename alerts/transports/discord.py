"""Discord incoming webhooks: one embed per anomaly (Discord allows ten per message)."""

from alerts.transports.base import COLOURS, Notice, post

MAX_EMBEDS = 10


def _embed(anomaly) -> dict:
    fields = [{"name": "Severity", "value": anomaly.severity, "inline": True}]
    if anomaly.customer_id:
        fields.append({"name": "Customer", "value": anomaly.customer_id[:1024], "inline": True})
    if anomaly.amount_display:
        fields.append({"name": "Amount", "value": anomaly.amount_display, "inline": True})
    return {
        "title": anomaly.title[:256],
        "url": anomaly.url,
        "description": anomaly.summary[:4000],
        "color": int(COLOURS[anomaly.severity].lstrip("#"), 16),
        "fields": fields,
        "footer": {"text": f"BillingWatch · {anomaly.detector}" + ("" if anomaly.livemode else " · test mode")},
    }


def payload(notice: Notice) -> dict:
    shown = notice.anomalies[:MAX_EMBEDS]
    content = notice.headline
    if len(notice.anomalies) > len(shown):
        content += f" (and {len(notice.anomalies) - len(shown)} more: {notice.dashboard_url})"
    return {"username": "BillingWatch", "content": content[:2000], "embeds": [_embed(a) for a in shown]}


def send(notice: Notice, config: dict) -> int:
    return post(config["url"], payload(notice))
