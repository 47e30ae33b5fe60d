"""The webhook endpoint, row by row of the contract in issue 2 and DESIGN.md."""

import json
import time
from unittest import mock

import pytest
from django.db import DatabaseError
from django.test import override_settings

from tests.conftest import SECRET, load_fixture_event, post_event, sign
from webhooks.models import SigningSecret, StripeEvent, WebhookRejection

pytestmark = pytest.mark.django_db


def stored(tenant, in_scope):
    with in_scope(tenant):
        return list(StripeEvent.objects.order_by("id"))


def rejections(tenant, in_scope):
    with in_scope(tenant):
        return {r.reason: r.count for r in WebhookRejection.objects.all()}


def test_valid_event_is_stored_pending_with_its_facts(client, acme, in_scope):
    event = load_fixture_event("charge.succeeded.json", id="evt_ok_1")
    response = post_event(client, acme.endpoint, event)
    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}
    [row] = stored(acme.tenant, in_scope)
    assert row.stripe_id == "evt_ok_1"
    assert row.type == "charge.succeeded"
    assert row.status == StripeEvent.Status.PENDING
    assert row.source == StripeEvent.Source.WEBHOOK
    assert row.endpoint_id == acme.endpoint.pk
    assert row.object_type == "charge"
    assert row.object_id == event["data"]["object"]["id"]
    assert row.amount == event["data"]["object"]["amount"]
    assert row.currency == event["data"]["object"]["currency"]
    assert row.payload == event
    assert row.available_at is not None
    with in_scope(acme.tenant):
        acme.endpoint.refresh_from_db()
    assert acme.endpoint.last_received_at is not None


def test_duplicate_is_acknowledged_and_changes_nothing(client, acme, in_scope):
    event = load_fixture_event("invoice.payment_failed.json", id="evt_dup")
    assert post_event(client, acme.endpoint, event).json()["duplicate"] is False
    before = [(e.pk, e.payload, e.received_at, e.status) for e in stored(acme.tenant, in_scope)]
    changed = dict(event, type="charge.refunded")  # same id, different body: still the same event
    response = post_event(client, acme.endpoint, changed)
    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": True}
    after = [(e.pk, e.payload, e.received_at, e.status) for e in stored(acme.tenant, in_scope)]
    assert after == before


def test_same_event_id_in_two_tenants_is_two_events(client, acme, globex, in_scope):
    event = load_fixture_event("charge.failed.json", id="evt_shared")
    assert post_event(client, acme.endpoint, event).json()["duplicate"] is False
    assert post_event(client, globex.endpoint, event, secret="whsec_globexsecret987654321").json()[
        "duplicate"
    ] is False
    assert len(stored(acme.tenant, in_scope)) == 1
    assert len(stored(globex.tenant, in_scope)) == 1


def test_path_without_trailing_slash_is_served_not_redirected(client, acme):
    event = load_fixture_event("charge.succeeded.json")
    response = post_event(client, acme.endpoint, event, path=acme.endpoint.path.rstrip("/"))
    assert response.status_code == 200


def test_unknown_token_is_404_and_nothing_stored(client, acme, in_scope):
    event = load_fixture_event("charge.succeeded.json")
    response = post_event(client, acme.endpoint, event, path="/webhooks/stripe/not-a-token/")
    assert response.status_code == 404
    assert response.json() == {"received": False, "error": "unknown webhook endpoint"}
    assert stored(acme.tenant, in_scope) == []


def test_disabled_endpoint_is_404_counted_and_nothing_stored(client, acme, in_scope):
    with in_scope(acme.tenant):
        acme.endpoint.enabled = False
        acme.endpoint.save()
    response = post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"))
    assert response.status_code == 404
    assert stored(acme.tenant, in_scope) == []
    assert rejections(acme.tenant, in_scope) == {"endpoint_disabled": 1}


def test_get_is_not_allowed(client, acme):
    assert client.get(acme.endpoint.path).status_code == 405


@override_settings(BILLINGWATCH_WEBHOOK_MAX_BYTES=2048)
def test_body_over_limit_is_413(client, acme, in_scope):
    event = load_fixture_event("charge.succeeded.json")
    event["data"]["object"]["metadata"] = {"padding": "x" * 4096}
    response = post_event(client, acme.endpoint, event)
    assert response.status_code == 413
    assert response.json()["error"] == "body larger than 2048 bytes"
    assert stored(acme.tenant, in_scope) == []
    assert rejections(acme.tenant, in_scope) == {"too_large": 1}


def _post_raw(client, endpoint, body: bytes | str, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(endpoint.path, data=body, content_type="application/json", **headers)


@pytest.mark.parametrize(
    ("signature", "error", "reason"),
    [
        (None, "missing Stripe-Signature header", "signature_missing"),
        ("", "missing Stripe-Signature header", "signature_missing"),
        ("garbage", "malformed Stripe-Signature header", "signature_malformed"),
        ("t=notanumber,v1=abc", "malformed Stripe-Signature header", "signature_malformed"),
        (f"t={int(time.time())}", "Stripe-Signature header has no v1 signature", "signature_malformed"),
        (f"t={int(time.time())},v1=deadbeef", "signature does not match any active signing secret",
         "signature_mismatch"),
    ],
)
def test_bad_signature_headers_are_400(client, acme, in_scope, signature, error, reason):
    body = json.dumps(load_fixture_event("charge.succeeded.json"))
    response = _post_raw(client, acme.endpoint, body, signature)
    assert response.status_code == 400
    assert response.json() == {"received": False, "error": error}
    assert stored(acme.tenant, in_scope) == []
    assert rejections(acme.tenant, in_scope) == {reason: 1}


def test_signature_with_another_secret_is_400(client, acme, in_scope):
    response = post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"), secret="whsec_other")
    assert response.status_code == 400
    assert response.json()["error"] == "signature does not match any active signing secret"
    assert stored(acme.tenant, in_scope) == []


def test_body_altered_after_signing_is_400(client, acme, in_scope):
    body = json.dumps(load_fixture_event("charge.succeeded.json"))
    signature = sign(body)
    response = _post_raw(client, acme.endpoint, body.replace('"livemode": false', '"livemode": true'), signature)
    assert response.status_code == 400
    assert stored(acme.tenant, in_scope) == []


@pytest.mark.parametrize("offset", [-305, 305, -3600, 86400])  # ±1 s of int() rounding
def test_timestamp_outside_tolerance_either_way_is_400(client, acme, in_scope, offset):
    event = load_fixture_event("charge.succeeded.json")
    response = post_event(client, acme.endpoint, event, timestamp=int(time.time()) + offset)
    assert response.status_code == 400
    assert response.json()["error"] == "signature timestamp is more than 300 s from now"
    assert stored(acme.tenant, in_scope) == []
    assert rejections(acme.tenant, in_scope) == {"timestamp_out_of_tolerance": 1}


@pytest.mark.parametrize("offset", [-290, 290])
def test_timestamp_inside_tolerance_is_accepted(client, acme, offset):
    event = load_fixture_event("charge.succeeded.json")
    assert post_event(client, acme.endpoint, event, timestamp=int(time.time()) + offset).status_code == 200


def test_rotation_both_secrets_work_until_the_old_one_expires(client, acme, in_scope):
    from datetime import timedelta

    from django.utils import timezone

    new_secret = "whsec_newsecret111222333"
    with in_scope(acme.tenant):
        old = SigningSecret.objects.get()
        SigningSecret.objects.create(endpoint=acme.endpoint, secret=new_secret)
        old.expires_at = timezone.now() + timedelta(hours=1)
        old.save()
    assert post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json")).status_code == 200
    assert post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"), secret=new_secret).status_code == 200
    with in_scope(acme.tenant):
        old.expires_at = timezone.now() - timedelta(seconds=1)
        old.save()
    expired = post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"))
    assert expired.status_code == 400
    assert expired.json()["error"] == "signature does not match any active signing secret"
    assert post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"), secret=new_secret).status_code == 200
    assert len(stored(acme.tenant, in_scope)) == 3


def test_endpoint_without_active_secret_is_400(client, make_tenant, in_scope):
    created = make_tenant("No Secret", secret=None)
    response = post_event(client, created.endpoint, load_fixture_event("charge.succeeded.json"))
    assert response.status_code == 400
    assert response.json()["error"] == "no active signing secret is configured for this endpoint"
    assert rejections(created.tenant, in_scope) == {"no_active_secret": 1}


def test_signed_but_not_json_is_400(client, acme, in_scope):
    body = "this is { not json"
    response = _post_raw(client, acme.endpoint, body, sign(body))
    assert response.status_code == 400
    assert response.json()["error"] == "body is not valid JSON"
    assert stored(acme.tenant, in_scope) == []
    assert rejections(acme.tenant, in_scope) == {"invalid_json": 1}


def test_signed_but_not_utf8_is_400(client, acme, in_scope):
    response = _post_raw(client, acme.endpoint, b"\xff\xfe{}", "t=1,v1=00")
    assert response.status_code == 400
    assert response.json()["error"] == "body is not UTF-8 text"
    assert stored(acme.tenant, in_scope) == []


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda e: e.pop("id"), "not a Stripe event: 'id' is missing or not a string"),
        (lambda e: e.update(object="charge"), "not a Stripe event: 'object' is not 'event'"),
        (lambda e: e.pop("data"), "not a Stripe event: 'data' is missing or not an object"),
        (lambda e: e.update(id="evt_" + "x" * 252), "not a Stripe event: 'id' is longer than 255 characters"),
        (lambda e: e.update(type="a." * 51), "not a Stripe event: 'type' is longer than 100 characters"),
        (lambda e: e.update(api_version=["2020"]), "not a Stripe event: 'api_version' is not a short string"),
    ],
)
def test_signed_json_that_is_not_an_event_is_400(client, acme, in_scope, mutate, error):
    event = load_fixture_event("charge.succeeded.json")
    mutate(event)
    response = post_event(client, acme.endpoint, event)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert stored(acme.tenant, in_scope) == []
    assert rejections(acme.tenant, in_scope) == {"not_an_event": 1}


def test_signed_json_array_is_not_an_event(client, acme, in_scope):
    response = post_event(client, acme.endpoint, "[1, 2]")
    assert response.status_code == 400
    assert stored(acme.tenant, in_scope) == []


def test_database_failure_answers_503_so_stripe_retries(client, acme, in_scope):
    event = load_fixture_event("charge.succeeded.json")
    with mock.patch("webhooks.ingest.store_event", side_effect=DatabaseError("disk I/O error")):
        response = post_event(client, acme.endpoint, event)
    assert response.status_code == 503
    assert response.json() == {"received": False, "error": "storage unavailable, retry later"}
    assert response["Retry-After"] == "30"
    assert stored(acme.tenant, in_scope) == []
    # Stripe retries: the same delivery is then stored once.
    assert post_event(client, acme.endpoint, event).json() == {"received": True, "duplicate": False}


def test_unknown_event_type_is_stored(client, acme, in_scope):
    event = load_fixture_event("charge.succeeded.json", type="something.brand_new")
    assert post_event(client, acme.endpoint, event).status_code == 200
    [row] = stored(acme.tenant, in_scope)
    assert row.type == "something.brand_new"


def test_csrf_is_not_required(acme):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert post_event(strict, acme.endpoint, load_fixture_event("charge.succeeded.json")).status_code == 200


def test_signature_reason_messages_are_short_and_do_not_echo_secrets(client, acme):
    response = post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"), secret="whsec_x")
    assert SECRET not in response.content.decode()
