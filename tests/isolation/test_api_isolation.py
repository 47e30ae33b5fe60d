"""Outsiders on the API: a valid key of another tenant gets 404 for every id of ours, and nothing changes."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import channels
from alerts.models import AlertChannel, AlertDelivery
from anomalies.models import Anomaly, AnomalyStatusChange, DetectorConfig
from tenants.models import ApiKey
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, event, store
from tests.api.conftest import client_for, make_anomaly
from webhooks.models import SigningSecret, StripeEvent

pytestmark = pytest.mark.django_db

NOT_FOUND = {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}


def snapshot(tenant):
    with tenant_scope(tenant):
        return {
            "anomalies": list(Anomaly.objects.values_list("public_id", "status", "snoozed_until").order_by("id")),
            "changes": AnomalyStatusChange.objects.count(),
            "events": list(StripeEvent.objects.values_list("stripe_id", "status", "attempts").order_by("id")),
            "keys": list(ApiKey.objects.values_list("prefix", "revoked_at").order_by("id")),
            "secrets": list(SigningSecret.objects.values_list("secret", "expires_at").order_by("id")),
            "configs": list(DetectorConfig.objects.values_list("detector", "enabled", "thresholds").order_by("id")),
            "channels": list(AlertChannel.objects.values_list("public_id", "name", "config", "enabled", "signing_secret",
                                                              "last_sent_at").order_by("id")),
            "deliveries": list(AlertDelivery.objects.values_list("public_id", "status", "attempts").order_by("id")),
        }


@pytest.fixture
def victim(acme):
    anomaly = make_anomaly(acme.tenant)
    payload = event("charge.succeeded", T0)
    store(acme.tenant, payload)
    with tenant_scope(acme.tenant):
        StripeEvent.objects.update(status="failed", available_at=None)
        fingerprint = SigningSecret.objects.get().fingerprint
        channel = channels.create_channel(name="ops", kind="webhook", config={"url": "https://example.com/bw"})
        delivery = AlertDelivery.objects.create(tenant=acme.tenant, channel=channel, kind="test", status="sent")
    return {
        "anomaly": anomaly.public_id, "event": payload["id"], "key": acme.api_key.split("_")[1],
        "endpoint": acme.endpoint.token, "secret": fingerprint,
        "channel": channel.public_id, "delivery": delivery.public_id,
    }


def requests_for(v):
    until = (timezone.now() + timedelta(hours=1)).isoformat()
    a, e = f"/api/v1/anomalies/{v['anomaly']}", f"/api/v1/endpoints/{v['endpoint']}"
    c = f"/api/v1/channels/{v['channel']}"
    return [
        ("get", f"{a}/", None),
        ("post", f"{a}/acknowledge/", {}),
        ("post", f"{a}/resolve/", {}),
        ("post", f"{a}/snooze/", {"until": until}),
        ("post", f"{a}/false_positive/", {"reason": "not ours"}),
        ("post", f"{a}/reopen/", {}),
        ("get", f"/api/v1/events/{v['event']}/", None),
        ("post", f"/api/v1/events/{v['event']}/reprocess/", {}),
        ("post", f"/api/v1/keys/{v['key']}/revoke/", {}),
        ("get", f"{e}/", None),
        ("post", f"{e}/secrets/", {"secret": "whsec_intruder0123456789"}),
        ("post", f"{e}/secrets/{v['secret']}/expire/", {}),
        ("get", f"{c}/", None),
        ("patch", f"{c}/", {"name": "stolen", "enabled": False}),
        ("post", f"{c}/test/", {}),
        ("post", f"{c}/rotate-secret/", {}),
        ("get", f"{c}/deliveries/", None),
        ("delete", f"{c}/", {}),
        ("get", f"/api/v1/deliveries/{v['delivery']}/", None),
    ]


def test_every_id_of_another_tenant_is_404_and_nothing_changes(acme, globex, victim):
    outsider = client_for(globex.api_key)
    before = snapshot(acme.tenant)
    for method, url, body in requests_for(victim):
        response = getattr(outsider, method)(url, body, format="json") if body is not None else outsider.get(url)
        assert response.status_code == 404, (method, url, response.status_code)
        assert response.json() == NOT_FOUND, url
    assert snapshot(acme.tenant) == before


def test_the_same_ids_work_for_their_owner(acme, victim):
    owner = client_for(acme.api_key)
    for method, url, body in requests_for(victim):
        if method == "get":
            assert owner.get(url).status_code == 200, url


def test_lists_and_settings_of_an_outsider_never_show_or_touch_ours(acme, globex, victim):
    outsider = client_for(globex.api_key)
    before = snapshot(acme.tenant)
    assert outsider.get("/api/v1/anomalies/").json()["results"] == []
    assert outsider.get("/api/v1/events/").json()["results"] == []
    assert [k["id"] for k in outsider.get("/api/v1/keys/").json()] == [globex.api_key.split("_")[1]]
    assert [e["id"] for e in outsider.get("/api/v1/endpoints/").json()] == [globex.endpoint.token]
    assert outsider.get("/api/v1/status/").json()["failed_events"] == 0
    assert outsider.get("/api/v1/channels/").json() == []
    assert outsider.get("/api/v1/deliveries/").json()["results"] == []
    assert outsider.get(f"/api/v1/deliveries/?channel={victim['channel']}").json()["results"] == []
    created = outsider.post("/api/v1/channels/", {"name": "theirs", "kind": "email", "config": {"to": "a@example.com"}},
                            format="json")
    assert created.status_code == 201
    assert outsider.patch("/api/v1/detectors/revenue_drop/", {"enabled": False}, format="json").status_code == 200
    assert outsider.post("/api/v1/detectors/backtest/", {"days": 2}, format="json").status_code == 200
    assert outsider.post("/api/v1/keys/", {"name": "theirs"}, format="json").status_code == 201
    assert snapshot(acme.tenant) == before


def test_a_member_of_another_tenant_cannot_use_our_slug(acme, globex, victim, client):
    from django.contrib.auth import get_user_model

    from tenants.models import Membership

    user = get_user_model().objects.create_user(username="intruder@example.com")
    with tenant_scope(globex.tenant):
        Membership.objects.create(tenant=globex.tenant, user=user, role="owner")
    client.force_login(user)
    before = snapshot(acme.tenant)
    slug = acme.tenant.slug
    for method, url, body in requests_for(victim):
        url = url.replace("/api/v1/", f"/api/v1/t/{slug}/")
        response = client.generic(method.upper(), url, "{}" if body is not None else "",
                                   content_type="application/json")
        assert response.status_code == 404, url
    assert client.get(f"/api/v1/t/{slug}/anomalies/").status_code == 404
    assert snapshot(acme.tenant) == before
