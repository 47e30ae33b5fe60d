"""Alert channel pages: list, add/edit per kind with the domain's errors, send test, delivery log."""

import pytest
from django.core import mail

from alerts.models import AlertChannel, AlertDelivery
from tenants.scope import tenant_scope
from tests.dashboard.conftest import url

pytestmark = pytest.mark.django_db

EMAIL = {"kind": "email", "name": "Ops mail", "setting": "ops@example.com, cfo@example.com", "min_severity": "high",
         "mode": "live", "enabled": "on", "digest": "none"}


def channels(tenant):
    with tenant_scope(tenant):
        return list(AlertChannel.objects.values_list("name", "kind", "config", "min_severity"))


def test_add_email_channel_and_edit_it(acme, owner):
    response = owner.post(url(acme.tenant, "alerts/new/"), EMAIL)
    assert response.status_code == 302
    assert channels(acme.tenant) == [("Ops mail", "email", {"to": ["ops@example.com", "cfo@example.com"]}, "high")]
    with tenant_scope(acme.tenant):
        channel = AlertChannel.objects.get()
    page = owner.get(url(acme.tenant, f"alerts/{channel.public_id}/")).content.decode()
    assert "ops@example.com, cfo@example.com" in page
    owner.post(url(acme.tenant, f"alerts/{channel.public_id}/"), {**EMAIL, "name": "Finance"})
    assert channels(acme.tenant)[0][0] == "Finance"


@pytest.mark.parametrize("kind, data, message", [
    ("email", {"setting": "nobody"}, "&#x27;nobody&#x27; is not a valid e-mail address"),
    ("slack", {"setting": "http://hooks.slack.com/x"}, "&#x27;url&#x27; must start with https://"),
    ("pagerduty", {"setting": "short"}, "&#x27;routing_key&#x27; must be the 32-character integration key"),
    ("slack", {"setting": "https://hooks.slack.com/x", "quiet_start": "22:00"}, "quiet hours need both a start and an end"),
])
def test_bad_channel_input_shows_the_error_and_stores_nothing(acme, owner, kind, data, message):
    response = owner.post(url(acme.tenant, f"alerts/new/?kind={kind}"),
                          {**EMAIL, "kind": kind, "digest": "none", **data})
    assert response.status_code == 400 and message in response.content.decode()
    assert channels(acme.tenant) == []


def test_send_test_and_delivery_log(acme, owner):
    owner.post(url(acme.tenant, "alerts/new/"), EMAIL)
    with tenant_scope(acme.tenant):
        channel = AlertChannel.objects.get()
    response = owner.post(url(acme.tenant, f"alerts/{channel.public_id}/test/"), follow=True)
    assert "Test alert sent to Ops mail" in response.content.decode()
    assert len(mail.outbox) == 1
    page = owner.get(url(acme.tenant, f"alerts/{channel.public_id}/deliveries/")).content.decode()
    assert "Test" in page and "Sent" in page


def test_delete(acme, owner):
    owner.post(url(acme.tenant, "alerts/new/"), EMAIL)
    with tenant_scope(acme.tenant):
        channel = AlertChannel.objects.get()
    owner.post(url(acme.tenant, f"alerts/{channel.public_id}/delete/"))
    assert channels(acme.tenant) == []


def test_viewer_cannot_add_test_or_delete(acme, owner, viewer):
    owner.post(url(acme.tenant, "alerts/new/"), EMAIL)
    with tenant_scope(acme.tenant):
        channel = AlertChannel.objects.get()
    before = channels(acme.tenant)
    assert viewer.post(url(acme.tenant, "alerts/new/"), {**EMAIL, "name": "mine"}).status_code == 403
    assert viewer.post(url(acme.tenant, f"alerts/{channel.public_id}/test/")).status_code == 403
    assert viewer.post(url(acme.tenant, f"alerts/{channel.public_id}/delete/")).status_code == 403
    assert channels(acme.tenant) == before and not mail.outbox
    with tenant_scope(acme.tenant):
        assert not AlertDelivery.objects.exists()


def test_unknown_kind_and_channel_are_404(acme, owner):
    assert owner.get(url(acme.tenant, "alerts/new/?kind=fax")).status_code == 404
    assert owner.get(url(acme.tenant, "alerts/00000000-0000-0000-0000-000000000000/")).status_code == 404


@pytest.mark.parametrize("rows", [1, 20])
def test_list_and_log_query_counts_do_not_grow(acme, owner, rows, django_assert_num_queries):
    for n in range(rows):
        owner.post(url(acme.tenant, "alerts/new/"), {**EMAIL, "name": f"c{n}"})
    with tenant_scope(acme.tenant):
        channel = AlertChannel.objects.first()
        for n in range(rows):
            AlertDelivery.objects.create(tenant=acme.tenant, channel=channel, kind="test", seq=n)
    with django_assert_num_queries(6):  # session, user, membership, channels, switcher, quota
        assert owner.get(url(acme.tenant, "alerts/")).status_code == 200
    with django_assert_num_queries(8):  # ... channel, count, page
        assert owner.get(url(acme.tenant, f"alerts/{channel.public_id}/deliveries/")).status_code == 200
