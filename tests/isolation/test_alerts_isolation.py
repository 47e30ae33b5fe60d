"""A channel of another tenant, addressed by its id: not found, nothing changed, nothing sent."""

import pytest

from alerts import channels
from alerts.models import AlertChannel, AlertDelivery
from tenants.scope import tenant_scope

pytestmark = pytest.mark.django_db


@pytest.fixture
def foreign_channel(globex):
    with tenant_scope(globex.tenant):
        return channels.create_channel(name="globex hook", kind="webhook", config={"url": "https://example.com/h"})


def _unchanged(channel):
    fresh = AlertChannel.all_tenants.get(pk=channel.pk)
    assert (fresh.name, fresh.config, fresh.enabled, fresh.signing_secret, fresh.last_sent_at) == (
        channel.name, channel.config, channel.enabled, channel.signing_secret, None
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda pid: channels.get_channel(pid),
        lambda pid: channels.update_channel(pid, name="stolen", enabled=False),
        lambda pid: channels.delete_channel(pid),
        lambda pid: channels.send_test(pid),
        lambda pid: channels.rotate_signing_secret(pid),
    ],
    ids=["get", "update", "delete", "send_test", "rotate_secret"],
)
def test_another_tenants_channel_is_not_found(acme, foreign_channel, call):
    with tenant_scope(acme.tenant), pytest.raises(channels.ChannelNotFound):
        call(foreign_channel.public_id)
    _unchanged(foreign_channel)
    assert AlertDelivery.all_tenants.filter(channel=foreign_channel).count() == 0


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", "00000000-0000-0000-0000-000000000000", 1])
def test_garbage_ids_are_not_found(acme, bad_id):
    with tenant_scope(acme.tenant), pytest.raises(channels.ChannelNotFound):
        channels.get_channel(bad_id)
