"""Alert channels and deliveries over the API: CRUD, test send against a real local receiver,
signing-secret rotation, masked credentials, the delivery log, errors and query counts."""

import pytest
from django.utils import timezone

from alerts.models import AlertChannel, AlertDelivery
from tenants.scope import tenant_scope
from tests.alerts.conftest import alert_settings, receiver  # noqa: F401  (real local receivers, http allowed)
from tests.alerts.helpers import make_channel
from tests.api.conftest import client_for, error, make_anomaly

pytestmark = pytest.mark.django_db

KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXsecretwxyz"
NOT_FOUND = {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}
READ_ONLY = {"error": {"code": "read_only", "message": "This API key is read-only.", "fields": {}}}
FIELDS = {
    "id", "name", "kind", "config", "signing_secret_hint", "min_severity", "detectors", "mode", "send_resolved",
    "enabled", "quiet_start", "quiet_end", "digest", "next_digest_at", "last_sent_at", "last_error",
    "last_error_at", "consecutive_failures", "auto_disabled_at", "created_at", "updated_at",
}
DELIVERY_FIELDS = {"id", "channel", "anomaly", "kind", "severity", "status", "attempts", "next_attempt_at",
                   "response_status", "error", "message_id", "created_at", "sent_at"}


def invalid(fields: dict) -> dict:
    return {"error": {"code": "invalid", "message": "Some fields are invalid.", "fields": fields}}


def rows(tenant):
    with tenant_scope(tenant):
        return list(AlertChannel.objects.values_list("public_id", "name", "kind", "config", "enabled",
                                                     "signing_secret").order_by("id"))


def add_delivery(tenant, channel, **fields):
    values = {"kind": "opened", "status": "sent", "attempts": 1}
    values.update(fields)
    if values["kind"] in ("opened", "escalated", "resolved", "reminder") and "anomaly" not in values:
        values["anomaly"] = make_anomaly(tenant)
    with tenant_scope(tenant):
        return AlertDelivery.objects.create(tenant=tenant, channel=channel, **values)


# --- create, read, update, delete -------------------------------------------------------------


def test_create_a_webhook_channel_shows_its_secret_once(api, acme, receiver):
    response = api.post("/api/v1/channels/", {"name": "Ops", "kind": "webhook", "config": {"url": receiver.url()},
                                              "min_severity": "high"}, format="json")
    assert response.status_code == 201
    created = response.json()
    assert set(created) == FIELDS | {"signing_secret"}
    with tenant_scope(acme.tenant):
        channel = AlertChannel.objects.get()
    assert created["id"] == str(channel.public_id)
    assert created["signing_secret"] == channel.signing_secret and channel.signing_secret.startswith("bwsec_")
    assert created["signing_secret_hint"] == f"bwsec_…{channel.signing_secret[-4:]}"
    assert created["config"] == {"url": receiver.url()} and created["min_severity"] == "high"
    listed = api.get("/api/v1/channels/").json()
    shown = api.get(f"/api/v1/channels/{channel.public_id}/").json()
    assert [c["id"] for c in listed] == [created["id"]]
    for body in (listed[0], shown):
        assert set(body) == FIELDS
        assert channel.signing_secret not in str(body)
        assert body["signing_secret_hint"] == created["signing_secret_hint"]


@pytest.mark.parametrize("kind, config, shown", [
    ("email", {"to": "Ops@Example.com, b@example.com"}, {"to": ["ops@example.com", "b@example.com"]}),
    ("slack", {"url": SLACK}, {"url": "hooks.slack.com/…wxyz"}),
    ("discord", {"url": "https://discord.com/api/webhooks/1/tokenabcd"}, {"url": "discord.com/…abcd"}),
    ("pagerduty", {"routing_key": KEY}, {"routing_key": "…CDEF"}),
])
def test_credentials_are_masked_and_other_kinds_have_no_secret(api, acme, kind, config, shown):
    created = api.post("/api/v1/channels/", {"name": kind, "kind": kind, "config": config}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["config"] == shown
    assert created.json()["signing_secret"] is None and created.json()["signing_secret_hint"] is None
    body = api.get("/api/v1/channels/").json()
    assert body[0]["config"] == shown
    for secret in (KEY, SLACK, "tokenabcd"):
        assert secret not in str(body) and secret not in str(created.json())
    with tenant_scope(acme.tenant):
        assert AlertChannel.objects.get().config != shown or kind == "email"  # stored in full


def test_sending_a_masked_credential_back_is_refused_not_saved(api, acme):
    channel = make_channel(acme.tenant, "pagerduty", {"routing_key": KEY})
    masked = api.get(f"/api/v1/channels/{channel.public_id}/").json()["config"]
    response = api.patch(f"/api/v1/channels/{channel.public_id}/", {"name": "renamed", "config": masked},
                         format="json")
    assert response.status_code == 400
    assert response.json() == invalid({"config": "'routing_key' must be the 32-character integration key of a "
                                                 "PagerDuty Events API v2 integration"})
    assert rows(acme.tenant)[0][1:4] == ("pagerduty channel", "pagerduty", {"routing_key": KEY})


def test_update_changes_only_what_is_sent(api, acme):
    channel = make_channel(acme.tenant, "email", {"to": ["a@example.com"]})
    response = api.patch(f"/api/v1/channels/{channel.public_id}/",
                         {"name": "Finance", "enabled": False, "quiet_start": "22:00", "quiet_end": "07:00",
                          "detectors": ["revenue_drop"], "digest": "daily"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["name"], body["enabled"], body["quiet_start"], body["quiet_end"], body["detectors"],
            body["digest"]) == ("Finance", False, "22:00:00", "07:00:00", ["revenue_drop"], "daily")
    assert body["config"] == {"to": ["a@example.com"]} and body["signing_secret"] is None
    assert body["next_digest_at"] is not None


def test_turning_a_channel_into_a_webhook_reveals_its_new_secret(api, acme):
    channel = make_channel(acme.tenant, "slack", {"url": SLACK})
    response = api.patch(f"/api/v1/channels/{channel.public_id}/",
                         {"kind": "webhook", "config": {"url": "https://example.com/bw"}}, format="json")
    assert response.status_code == 200
    secret = response.json()["signing_secret"]
    assert secret.startswith("bwsec_") and secret == rows(acme.tenant)[0][5]
    again = api.patch(f"/api/v1/channels/{channel.public_id}/", {"name": "hook"}, format="json").json()
    assert again["signing_secret"] is None and secret not in str(again)


def test_delete_removes_the_channel_and_its_log(api, acme):
    channel = make_channel(acme.tenant, "email", {"to": ["a@example.com"]})
    add_delivery(acme.tenant, channel)
    response = api.delete(f"/api/v1/channels/{channel.public_id}/")
    assert response.status_code == 204 and response.content == b""
    assert rows(acme.tenant) == []
    assert api.get(f"/api/v1/channels/{channel.public_id}/").json() == NOT_FOUND
    assert AlertDelivery.all_tenants.count() == 0


def test_put_is_not_allowed(api, acme):
    channel = make_channel(acme.tenant, "email", {"to": ["a@example.com"]})
    response = api.put(f"/api/v1/channels/{channel.public_id}/", {"name": "x"}, format="json")
    assert response.status_code == 405
    assert error(response)["code"] == "method_not_allowed"


# --- validation: each error with its exact body, nothing saved -------------------------------


@pytest.mark.parametrize("kind, config, message", [
    ("email", {}, "'to' needs at least one e-mail address"),
    ("email", {"to": ["not-an-address"]}, "'not-an-address' is not a valid e-mail address"),
    ("email", {"to": ["a@example.com"], "cc": "b@example.com"}, "unknown setting(s): cc; allowed: to"),
    ("slack", {"url": "http://hooks.slack.com/services/x"}, "'url' must start with https://"),
    ("slack", {}, "'url' is required"),
    ("discord", {"url": "https:///nohost"}, "'url' has no host name"),
    ("discord", {"url": "https://discord.com/api/webhooks/1", "username": "x"},
     "unknown setting(s): username; allowed: url"),
    ("webhook", {"url": "https://user:pw@example.com/hook"}, "'url' must not contain a user name or password"),
    ("webhook", {"url": "ftp://example.com/"}, "'url' must start with https://"),
    ("webhook", ["https://example.com"], "must be a JSON object"),
    ("pagerduty", {"routing_key": "short"},
     "'routing_key' must be the 32-character integration key of a PagerDuty Events API v2 integration"),
    ("pagerduty", {"routing_key": KEY, "severity": "x"}, "unknown setting(s): severity; allowed: routing_key"),
])
def test_invalid_config_of_each_kind_is_400_with_the_field(api, acme, settings, kind, config, message):
    settings.BILLINGWATCH_ALERTS_ALLOW_HTTP = False
    response = api.post("/api/v1/channels/", {"name": "x", "kind": kind, "config": config}, format="json")
    assert response.status_code == 400
    assert response.json() == invalid({"config": message})
    assert rows(acme.tenant) == []


def test_unknown_kind_is_400(api, acme):
    response = api.post("/api/v1/channels/", {"name": "x", "kind": "sms", "config": {"to": "+1555"}}, format="json")
    assert response.status_code == 400
    assert response.json() == invalid(
        {"kind": "unknown channel kind 'sms'; use one of email, slack, discord, webhook, pagerduty"}
    )
    assert rows(acme.tenant) == []


def test_missing_and_malformed_fields_are_400(api, acme):
    response = api.post("/api/v1/channels/", {}, format="json")
    required = "This field is required."
    assert response.json() == invalid({"name": required, "kind": required, "config": required})
    response = api.post("/api/v1/channels/", {"name": "x", "kind": "webhook", "config": {"url": "https://e.com/"},
                                              "min_severity": "apocalyptic", "quiet_start": "late"}, format="json")
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"min_severity", "quiet_start"}
    assert api.post("/api/v1/channels/", [1], format="json").status_code == 400
    assert rows(acme.tenant) == []


@pytest.mark.parametrize("fields, expected", [
    ({"detectors": ["no_such_detector"]}, {"detectors": "unknown detector(s): no_such_detector"}),
    ({"quiet_start": "22:00"}, {"quiet_end": "quiet hours need both a start and an end"}),
    ({"digest": "daily"}, {"digest": "digests are e-mails: only e-mail channels can receive them"}),
])
def test_domain_rules_come_back_as_field_errors(api, acme, fields, expected):
    body = {"name": "x", "kind": "webhook", "config": {"url": "https://example.com/h"}, **fields}
    response = api.post("/api/v1/channels/", body, format="json")
    assert response.status_code == 400
    assert response.json() == invalid(expected)
    assert rows(acme.tenant) == []


def test_a_private_address_is_refused(api, acme, receiver, settings):
    settings.BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS = False
    response = api.post("/api/v1/channels/", {"name": "x", "kind": "webhook", "config": {"url": receiver.url()}},
                        format="json")
    assert response.status_code == 400
    assert response.json() == invalid({"config": "'url' points to a private, loopback or reserved address"})
    assert rows(acme.tenant) == []
    # A name that resolves to loopback passes the config check; the send refuses it after resolving.
    port = receiver.server.server_address[1]
    created = api.post("/api/v1/channels/", {"name": "x", "kind": "webhook",
                                             "config": {"url": f"http://localhost:{port}/ok"}}, format="json")
    assert created.status_code == 201
    result = api.post(f"/api/v1/channels/{created.json()['id']}/test/").json()
    assert result["ok"] is False and result["status"] is None
    assert result["message"].startswith("Test alert failed (permanent): ")
    assert "private, loopback or reserved address" in result["message"]
    assert receiver.requests == []


def test_a_bad_patch_changes_nothing(api, acme):
    channel = make_channel(acme.tenant, "email", {"to": ["a@example.com"]})
    before = rows(acme.tenant)
    response = api.patch(f"/api/v1/channels/{channel.public_id}/", {"kind": "slack", "name": "y"}, format="json")
    assert response.status_code == 400
    assert response.json() == invalid({"config": "unknown setting(s): to; allowed: url"})
    assert rows(acme.tenant) == before


# --- test send, rotation ---------------------------------------------------------------------


def test_test_send_reaches_a_real_receiver_and_is_logged(api, acme, receiver):
    channel = make_channel(acme.tenant, "webhook", {"url": receiver.url("/ok")}, name="Ops")
    response = api.post(f"/api/v1/channels/{channel.public_id}/test/")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "message": "Test alert sent to Ops (status 200).", "status": 200}
    (request,) = receiver.to("/ok")
    assert request.json["type"] == "test" and "BillingWatch-Signature" in request.headers
    (row,) = api.get(f"/api/v1/channels/{channel.public_id}/deliveries/").json()["results"]
    assert (row["kind"], row["status"], row["response_status"], row["anomaly"]) == ("test", "sent", 200, None)


def test_test_send_failure_is_reported_inline(api, acme, receiver):
    channel = make_channel(acme.tenant, "slack", {"url": receiver.url("/status/500")}, enabled=False)
    response = api.post(f"/api/v1/channels/{channel.public_id}/test/")
    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["status"]) == (False, 500)
    assert body["message"].startswith("Test alert failed (temporary): ")
    assert len(receiver.to("/status/500")) == 1  # sent although the channel is off
    assert api.get("/api/v1/deliveries/?status=failed&kind=test").json()["results"][0]["response_status"] == 500


def test_rotate_shows_the_new_secret_once(api, acme, receiver):
    channel = make_channel(acme.tenant, "webhook", {"url": receiver.url()})
    old = channel.signing_secret
    response = api.post(f"/api/v1/channels/{channel.public_id}/rotate-secret/")
    assert response.status_code == 200
    new = response.json()["signing_secret"]
    assert new.startswith("bwsec_") and new != old and rows(acme.tenant)[0][5] == new
    assert response.json()["signing_secret_hint"] == f"bwsec_…{new[-4:]}"
    shown = api.get(f"/api/v1/channels/{channel.public_id}/").json()
    assert new not in str(shown) and "signing_secret" not in shown
    api.post(f"/api/v1/channels/{channel.public_id}/test/")
    from alerts.transports.webhook import verify

    (request,) = receiver.to("/ok")
    assert verify(new, request.body, request.headers["BillingWatch-Signature"])


def test_rotate_on_a_channel_without_secret_is_409(api, acme):
    channel = make_channel(acme.tenant, "email", {"to": ["a@example.com"]})
    response = api.post(f"/api/v1/channels/{channel.public_id}/rotate-secret/")
    assert response.status_code == 409
    assert response.json() == {"error": {"code": "not_signed", "message": "only webhook channels have a signing secret",
                                         "fields": {}}}
    assert rows(acme.tenant)[0][5] == ""


# --- deliveries ------------------------------------------------------------------------------


def test_delivery_list_filters_and_retrieve(api, acme):
    hook = make_channel(acme.tenant, "webhook", {"url": "https://example.com/h"})
    mail = make_channel(acme.tenant, "email", {"to": ["a@example.com"]})
    anomaly = make_anomaly(acme.tenant)
    made = {
        "a": add_delivery(acme.tenant, hook, anomaly=anomaly),
        "b": add_delivery(acme.tenant, hook, kind="test", status="failed", error="boom"),
        "c": add_delivery(acme.tenant, mail, anomaly=anomaly, status="pending", attempts=0,
                          next_attempt_at=timezone.now()),
        "d": add_delivery(acme.tenant, mail, kind="digest", status="skipped"),
    }
    name = {str(d.public_id): n for n, d in made.items()}

    def listed(query=""):
        response = api.get(f"/api/v1/deliveries/?{query}")
        assert response.status_code == 200, response.json()
        return [name[r["id"]] for r in response.json()["results"]]

    assert listed() == ["d", "c", "b", "a"]
    assert listed("status=failed&status=pending") == ["c", "b"]
    assert listed("kind=opened") == ["c", "a"]
    assert listed(f"channel={hook.public_id}") == ["b", "a"]
    assert listed(f"anomaly={anomaly.public_id}&channel={mail.public_id}") == ["c"]
    body = api.get(f"/api/v1/deliveries/{made['a'].public_id}/").json()
    assert set(body) == DELIVERY_FIELDS
    assert (body["channel"], body["anomaly"], body["kind"], body["status"]) == (
        str(hook.public_id), str(anomaly.public_id), "opened", "sent")
    log = api.get(f"/api/v1/channels/{mail.public_id}/deliveries/?status=pending").json()
    assert [name[r["id"]] for r in log["results"]] == ["c"]


def test_delivery_filters_and_ids_are_validated(api, acme):
    response = api.get("/api/v1/deliveries/?status=lost&channel=nope&kind=sms")
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"status", "channel", "kind"}
    for bad in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        assert api.get(f"/api/v1/deliveries/{bad}/").json() == NOT_FOUND
        assert api.get(f"/api/v1/channels/{bad}/").json() == NOT_FOUND
        assert api.get(f"/api/v1/channels/{bad}/deliveries/").json() == NOT_FOUND
    assert api.get("/api/v1/deliveries/?cursor=garbage").status_code == 404


def test_delivery_cursor_pagination_walks_every_row_once(api, acme):
    channel = make_channel(acme.tenant, "webhook", {"url": "https://example.com/h"})
    made = {str(add_delivery(acme.tenant, channel).public_id) for _ in range(5)}
    for start in ("/api/v1/deliveries/?page_size=2", f"/api/v1/channels/{channel.public_id}/deliveries/?page_size=2"):
        seen, url = [], start
        while url:
            body = api.get(url).json()
            assert len(body["results"]) <= 2
            seen += [r["id"] for r in body["results"]]
            url = body["next"]
        assert len(seen) == 5 and set(seen) == made


# --- authentication, read-only keys, other tenants ------------------------------------------


def test_no_or_bad_key_is_401(acme):
    channel = make_channel(acme.tenant, "email", {"to": ["a@example.com"]})
    for client in (client_for("bw_nope_nope"), client_for("")):
        for url in ("/api/v1/channels/", f"/api/v1/channels/{channel.public_id}/", "/api/v1/deliveries/"):
            response = client.get(url)
            assert response.status_code == 401
            assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    response = client_for("bw_nope_nope").post("/api/v1/channels/", {"name": "x"}, format="json")
    assert response.status_code == 401 and error(response)["code"] == "authentication_failed"
    assert len(rows(acme.tenant)) == 1


def test_read_only_key_reads_but_cannot_write(readonly_api, acme, receiver):
    channel = make_channel(acme.tenant, "webhook", {"url": receiver.url()})
    before = rows(acme.tenant)
    assert readonly_api.get("/api/v1/channels/").status_code == 200
    assert readonly_api.get(f"/api/v1/channels/{channel.public_id}/deliveries/").status_code == 200
    url = f"/api/v1/channels/{channel.public_id}/"
    for method, path, body in [
        ("post", "/api/v1/channels/", {"name": "x", "kind": "email", "config": {"to": ["a@example.com"]}}),
        ("patch", url, {"enabled": False}),
        ("delete", url, None),
        ("post", f"{url}test/", None),
        ("post", f"{url}rotate-secret/", None),
    ]:
        response = getattr(readonly_api, method)(path, body, format="json")
        assert response.status_code == 403, (method, path)
        assert response.json() == READ_ONLY
    assert rows(acme.tenant) == before
    assert receiver.requests == [] and AlertDelivery.all_tenants.count() == 0


def test_another_tenants_channel_and_deliveries_are_404_and_unchanged(outsider, acme, receiver):
    channel = make_channel(acme.tenant, "webhook", {"url": receiver.url()})
    delivery = add_delivery(acme.tenant, channel)
    before = rows(acme.tenant)
    url = f"/api/v1/channels/{channel.public_id}/"
    for method, path, body in [
        ("get", url, None), ("patch", url, {"name": "stolen"}), ("delete", url, None),
        ("post", f"{url}test/", None), ("post", f"{url}rotate-secret/", None), ("get", f"{url}deliveries/", None),
        ("get", f"/api/v1/deliveries/{delivery.public_id}/", None),
    ]:
        response = getattr(outsider, method)(path, body, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json() == NOT_FOUND
    assert outsider.get("/api/v1/channels/").json() == []
    assert outsider.get(f"/api/v1/deliveries/?channel={channel.public_id}").json()["results"] == []
    assert rows(acme.tenant) == before
    assert receiver.requests == [] and AlertDelivery.all_tenants.count() == 1


# --- query counts ----------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 20])
def test_list_query_counts_do_not_grow_with_rows(api, acme, django_assert_num_queries, count):
    first = None
    for n in range(count):
        channel = make_channel(acme.tenant, "webhook", {"url": f"https://example.com/{n}"}, name=f"c{n:02}")
        first = first or channel
        add_delivery(acme.tenant, first)
    api.get("/api/v1/status/")  # last_used_at written once, outside the measured requests
    with django_assert_num_queries(2):  # the key, the channels
        assert len(api.get("/api/v1/channels/").json()) == count
    with django_assert_num_queries(2):  # the key, the page (with channel and anomaly joined)
        assert len(api.get("/api/v1/deliveries/").json()["results"]) == count
    with django_assert_num_queries(3):  # the key, the channel, the page
        assert len(api.get(f"/api/v1/channels/{first.public_id}/deliveries/").json()["results"]) == count


def test_schema_allows_what_deliveries_of_tests_and_digests_return(api, acme):
    """Fuzz finding (make fuzz, ST108): a test delivery's empty severity was outside the Delivery schema."""
    import jsonschema
    import yaml

    channel = make_channel(acme.tenant, "email", {"to": ["a@example.com"]})
    add_delivery(acme.tenant, channel, kind="test", status="failed")
    (row,) = api.get("/api/v1/deliveries/").json()["results"]
    assert row["severity"] == "" and row["anomaly"] is None
    schema = yaml.safe_load(api.get("/api/schema/").content)
    delivery = schema["components"]["schemas"]["Delivery"]["properties"]
    for name in ("severity", "kind", "status", "error"):
        jsonschema.validate(row[name], {**delivery[name], "components": schema["components"]})
    assert delivery["anomaly"]["nullable"] and delivery["response_status"]["nullable"]
