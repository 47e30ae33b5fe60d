"""Channel services: typed config per kind, validation, send_test, the admin."""

import pytest
from django.core.exceptions import ValidationError

from alerts import channels
from alerts.models import AlertChannel
from tenants.scope import tenant_scope
from tests.alerts.helpers import deliveries, make_channel, refreshed

pytestmark = pytest.mark.django_db
KEY = "R0UT1NGKEY0123456789abcdefABCDEF"


@pytest.mark.parametrize(
    "kind, config, message",
    [
        ("email", {}, "at least one e-mail address"),
        ("email", {"to": ["not-an-address"]}, "not a valid e-mail address"),
        ("email", {"to": ["a@example.com"], "cc": ["b@example.com"]}, "unknown setting"),
        ("email", {"to": [f"u{n}@example.com" for n in range(21)]}, "more than 20"),
        ("slack", {"url": "http://hooks.slack.com/services/x"}, "must start with https://"),
        ("slack", {}, "'url' is required"),
        ("discord", {"url": "https:///nohost"}, "no host name"),
        ("discord", {"url": "https://discord.com/api/webhooks/1", "username": "x"}, "unknown setting"),
        ("webhook", {"url": "https://10.0.0.5/hook"}, "private, loopback or reserved"),
        ("webhook", {"url": "https://user:pw@example.com/hook"}, "user name or password"),
        ("webhook", {"url": "ftp://example.com/"}, "must start with https://"),
        ("pagerduty", {"routing_key": "short"}, "32-character integration key"),
        ("pagerduty", {}, "32-character integration key"),
        ("sms", {"to": "+1555"}, "unknown channel kind"),
    ],
)
def test_invalid_config_is_refused_and_nothing_saved(acme, settings, kind, config, message):
    settings.BILLINGWATCH_ALERTS_ALLOW_HTTP = False
    settings.BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS = False
    with tenant_scope(acme.tenant):
        with pytest.raises(ValidationError, match=message):
            channels.create_channel(name="x", kind=kind, config=config)
        assert AlertChannel.objects.count() == 0


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"detectors": ["no_such_detector"]}, "unknown detector"),
        ({"quiet_start": "22:00"}, "both a start and an end"),
        ({"digest": "daily"}, "only e-mail channels"),
        ({"min_severity": "apocalyptic"}, "not a valid choice"),
        ({"signing_secret": "mine"}, "not an editable field"),
    ],
)
def test_invalid_fields_are_refused(acme, fields, message):
    with tenant_scope(acme.tenant), pytest.raises(ValidationError, match=message):
        channels.create_channel(name="x", kind="webhook", config={"url": "https://example.com/h"}, **fields)


def test_valid_configs_are_normalised_and_webhooks_get_a_secret(acme):
    email = make_channel(acme.tenant, "email", {"to": "A@Example.com, b@example.com"})
    assert email.config == {"to": ["a@example.com", "b@example.com"]} and email.signing_secret == ""
    hook = make_channel(acme.tenant, "webhook", {"url": " https://example.com/hook "})
    assert hook.config == {"url": "https://example.com/hook"} and hook.signing_secret.startswith("bwsec_")
    pd = make_channel(acme.tenant, "pagerduty", {"routing_key": KEY})
    assert pd.config == {"routing_key": KEY}


def test_config_is_validated_on_any_save(acme):
    channel = make_channel(acme.tenant, "slack", {"url": "https://hooks.slack.com/services/x"})
    channel.config = {"url": "javascript:alert(1)"}
    with tenant_scope(acme.tenant), pytest.raises(ValidationError):
        channel.save()
    assert refreshed(channel).config == {"url": "https://hooks.slack.com/services/x"}


def test_send_test_reports_success_and_logs_it(acme, receiver):
    channel = make_channel(acme.tenant, "webhook", {"url": receiver.url("/hook")})
    with tenant_scope(acme.tenant):
        result = channels.send_test(channel.public_id)
    assert result.ok and result.status == 200 and "Test alert sent" in result.message
    [request] = receiver.to("/hook")
    assert request.json["type"] == "test"
    [row] = deliveries(acme.tenant, kind="test")
    assert row.status == "sent" and refreshed(channel).last_sent_at


def test_send_test_reports_failure_inline_without_disabling(acme, receiver, settings):
    settings.BILLINGWATCH_ALERTS_DISABLE_AFTER = 1
    channel = make_channel(acme.tenant, "slack", {"url": receiver.url("/status/404")})
    with tenant_scope(acme.tenant):
        result = channels.send_test(channel.public_id)
    assert not result.ok and result.status == 404 and "permanent" in result.message
    channel = refreshed(channel)
    assert channel.enabled and "answered 404" in channel.last_error


def test_re_enabling_clears_the_auto_disable(acme):
    channel = make_channel(acme.tenant, "slack", {"url": "https://hooks.slack.com/services/x"})
    AlertChannel.all_tenants.filter(pk=channel.pk).update(enabled=False, auto_disabled_at="2026-01-01T00:00Z", consecutive_failures=5)
    with tenant_scope(acme.tenant):
        channels.update_channel(channel.public_id, enabled=True)
    channel = refreshed(channel)
    assert channel.enabled and channel.auto_disabled_at is None and channel.consecutive_failures == 0


def test_admin_lists_channels_and_sends_a_test_alert(acme, receiver, admin_client):
    channel = make_channel(acme.tenant, "webhook", {"url": receiver.url("/hook")})
    assert admin_client.get("/admin/alerts/alertchannel/").status_code == 200
    assert admin_client.get(f"/admin/alerts/alertchannel/{channel.pk}/change/").status_code == 200
    response = admin_client.post(
        "/admin/alerts/alertchannel/",
        {"action": "send_test_alert", "_selected_action": [channel.pk]},
        follow=True,
    )
    assert "Test alert sent" in response.content.decode()
    assert len(receiver.to("/hook")) == 1
    assert admin_client.get("/admin/alerts/alertdelivery/").status_code == 200
    [row] = deliveries(acme.tenant)
    assert admin_client.get(f"/admin/alerts/alertdelivery/{row.pk}/change/").status_code == 200


def test_admin_edit_validates_the_config(acme, admin_client, settings):
    settings.BILLINGWATCH_ALERTS_ALLOW_HTTP = False
    channel = make_channel(acme.tenant, "slack", {"url": "https://hooks.slack.com/services/x"})
    response = admin_client.post(
        f"/admin/alerts/alertchannel/{channel.pk}/change/",
        {"tenant": acme.tenant.pk, "name": "s", "kind": "slack", "config": '{"url": "http://plain"}',
         "min_severity": "medium", "detectors": "[]", "mode": "live", "digest": "none", "enabled": "on"},
    )
    assert response.status_code == 200 and "must start with https://" in response.content.decode()
    assert refreshed(channel).config == {"url": "https://hooks.slack.com/services/x"}
