"""Each transport against a real receiver: payload, signature, and the mail framework."""

import socket

import pytest
from django.core import mail

from alerts import dispatch
from alerts.transports import webhook
from tests.alerts.conftest import later, open_anomaly
from tests.alerts.helpers import deliveries, make_channel

pytestmark = pytest.mark.django_db
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"


def test_slack_payload_has_colour_title_summary_customer_amount_and_link(acme, receiver):
    make_channel(acme.tenant, "slack", {"url": receiver.url("/slack")})
    anomaly = open_anomaly(acme.tenant, severity="high", amount=4900, customer="cus_X", title="Two charges")
    assert dispatch.drain(now=later(31)) == 1
    [request] = receiver.to("/slack")
    body = request.json
    assert body["text"] == "[HIGH] New anomaly: Two charges"
    [attachment] = body["attachments"]
    assert attachment["color"] == "#dc2626"
    assert attachment["title"] == "Two charges"
    assert attachment["title_link"] == f"https://bw.example.com/t/{acme.tenant.slug}/anomalies/{anomaly.public_id}/"
    assert attachment["text"] == "Something odd about cus_X"
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["Customer"] == "cus_X" and fields["Amount"] == "49.00 USD"


def test_discord_payload_has_an_embed_in_the_severity_colour(acme, receiver):
    make_channel(acme.tenant, "discord", {"url": receiver.url("/discord")}, min_severity="low")
    anomaly = open_anomaly(acme.tenant, severity="critical", amount=1000, currency="jpy", title="Card testing")
    dispatch.drain(now=later(31))
    [request] = receiver.to("/discord")
    [embed] = request.json["embeds"]
    assert embed["color"] == 0x7F1D1D
    assert embed["title"] == "Card testing"
    assert embed["url"].endswith(f"/anomalies/{anomaly.public_id}/")
    assert {"name": "Amount", "value": "1,000 JPY", "inline": True} in embed["fields"]
    assert request.json["content"].startswith("[CRITICAL] New anomaly")


def test_webhook_is_signed_like_stripe_and_verifiable(acme, receiver):
    channel = make_channel(acme.tenant, "webhook", {"url": receiver.url("/hook")})
    anomaly = open_anomaly(acme.tenant)
    dispatch.drain(now=later(31))
    [request] = receiver.to("/hook")
    header = request.headers["BillingWatch-Signature"]
    assert header.startswith("t=") and ",v1=" in header
    assert webhook.verify(channel.signing_secret, request.body, header)
    assert not webhook.verify("bwsec_wrong", request.body, header)
    assert not webhook.verify(channel.signing_secret, request.body + b" ", header)
    body = request.json
    assert body["type"] == "anomaly.opened"
    assert body["data"]["anomalies"][0]["id"] == str(anomaly.public_id)
    [row] = deliveries(acme.tenant, kind="opened")
    assert request.headers["BillingWatch-Delivery"] == body["id"] == str(row.public_id)


def test_pagerduty_triggers_with_the_anomaly_id_and_resolves_on_resolve(acme, receiver):
    from anomalies import lifecycle
    from tenants.scope import tenant_scope

    make_channel(acme.tenant, "pagerduty", {"routing_key": ROUTING_KEY})
    anomaly = open_anomaly(acme.tenant, severity="high")
    dispatch.drain(now=later(31))
    with tenant_scope(acme.tenant):
        lifecycle.change_status(anomaly, "resolve", actor_label="alice")
    dispatch.drain(now=later(31))
    trigger, resolve = [r.json for r in receiver.to("/pagerduty")]
    assert trigger["event_action"] == "trigger"
    assert trigger["routing_key"] == ROUTING_KEY
    assert trigger["dedup_key"] == str(anomaly.public_id)
    assert trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["summary"] == anomaly.title
    assert trigger["links"][0]["href"].endswith(f"/anomalies/{anomaly.public_id}/")
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": str(anomaly.public_id)}


def test_email_has_text_and_html_with_a_link(acme):
    make_channel(acme.tenant, "email", {"to": ["Ops@Example.com", "cfo@example.com"]})
    anomaly = open_anomaly(acme.tenant, title="Refund spike", amount=12345)
    dispatch.drain(now=later(31))
    [message] = mail.outbox
    assert message.to == ["ops@example.com", "cfo@example.com"]
    assert message.subject == "[HIGH] New anomaly: Refund spike"
    link = f"https://bw.example.com/t/{acme.tenant.slug}/anomalies/{anomaly.public_id}/"
    assert link in message.body and "123.45 USD" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and f'href="{link}"' in html


def test_email_through_a_real_smtp_server(acme, settings):
    from aiosmtpd.controller import Controller

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.MAILERS = {
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
            }
        }
        make_channel(acme.tenant, "email", {"to": ["ops@example.com"]})
        open_anomaly(acme.tenant, title="Over SMTP")
        dispatch.drain(now=later(31))
    finally:
        controller.stop()
    [envelope] = received
    assert envelope.rcpt_tos == ["ops@example.com"]
    content = envelope.content.decode()
    assert "Subject: [HIGH] New anomaly: Over SMTP" in content and "text/html" in content
    [row] = deliveries(acme.tenant, kind="opened")
    assert row.status == "sent" and row.response_status == 250
