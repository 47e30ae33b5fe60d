from datetime import timedelta

import pytest

from tenants.scope import tenant_scope
from tests.anomalies.events import T0, event, store
from tests.api.conftest import error
from webhooks.models import StripeEvent

pytestmark = pytest.mark.django_db


def stored(tenant, *payloads, **kwargs):
    store(tenant, *payloads, **kwargs)
    return [p["id"] for p in payloads]


def ids(response):
    return [e["id"] for e in response.json()["results"]]


def test_list_newest_received_first_without_payload(api, acme):
    first = stored(acme.tenant, event("charge.succeeded", T0, amount=1234, currency="eur"))
    second = stored(acme.tenant, event("charge.failed", T0))
    response = api.get("/api/v1/events/")
    assert response.status_code == 200
    assert ids(response) == second + first
    row = response.json()["results"][1]
    assert "payload" not in row
    assert row["amount"] == 1234 and row["currency"] == "eur"
    assert row["created"] == "2026-03-02T12:00:00Z"
    assert row["status"] == "pending"


def test_retrieve_has_the_payload(api, acme):
    payload = event("charge.succeeded", T0)
    stored(acme.tenant, payload)
    body = api.get(f"/api/v1/events/{payload['id']}/").json()
    assert body["payload"] == payload
    assert body["detector_errors"] == []


@pytest.mark.parametrize("query, expected", [
    ("type=charge.failed", {"b"}),
    ("status=failed", {"b"}),
    ("customer_id=cus_api", {"a"}),
    ("object_id=ch_api", {"a"}),
    ("source=webhook", {"c"}),
    ("created_after=2026-03-03T00:00:00Z", {"c"}),
    ("created_before=2026-03-03T00:00:00Z", {"a", "b"}),
])
def test_filters(api, acme, query, expected):
    a = event("charge.succeeded", T0, customer="cus_api")
    a["data"]["object"]["id"] = "ch_api"
    b = event("charge.failed", T0)
    c = event("charge.succeeded", T0 + timedelta(days=2))
    stored(acme.tenant, a, b)
    stored(acme.tenant, c, source="webhook")
    with tenant_scope(acme.tenant):
        StripeEvent.objects.filter(stripe_id=b["id"]).update(status="failed", available_at=None)
    names = {a["id"]: "a", b["id"]: "b", c["id"]: "c"}
    response = api.get(f"/api/v1/events/?{query}")
    assert response.status_code == 200
    assert {names[i] for i in ids(response)} == expected


def test_bad_filter_is_400(api):
    response = api.get("/api/v1/events/?source=carrier-pigeon")
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"source"}


def test_pagination(api, acme):
    made = stored(acme.tenant, *[event("charge.succeeded", T0) for _ in range(5)])
    seen, url = [], "/api/v1/events/?page_size=2"
    while url:
        body = api.get(url).json()
        seen += [e["id"] for e in body["results"]]
        url = body["next"]
    assert sorted(seen) == sorted(made)


def test_reprocess_a_failed_event(api, acme):
    (stripe_id,) = stored(acme.tenant, event("charge.succeeded", T0))
    with tenant_scope(acme.tenant):
        StripeEvent.objects.update(status="failed", available_at=None, attempts=8, last_error="boom")
    response = api.post(f"/api/v1/events/{stripe_id}/reprocess/")
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    with tenant_scope(acme.tenant):
        row = StripeEvent.objects.get()
    assert (row.status, row.attempts) == ("pending", 0)
    assert row.available_at is not None


def test_reprocess_of_an_event_that_did_not_fail_is_409(api, acme):
    (stripe_id,) = stored(acme.tenant, event("charge.succeeded", T0))
    response = api.post(f"/api/v1/events/{stripe_id}/reprocess/")
    assert response.status_code == 409
    assert response.json() == {"error": {"code": "invalid_transition",
                                         "message": "only failed events can be reprocessed; this one is pending",
                                         "fields": {}}}


def test_reprocess_needs_a_writable_key(readonly_api, acme):
    (stripe_id,) = stored(acme.tenant, event("charge.succeeded", T0))
    with tenant_scope(acme.tenant):
        StripeEvent.objects.update(status="failed", available_at=None)
    assert readonly_api.post(f"/api/v1/events/{stripe_id}/reprocess/").status_code == 403
    with tenant_scope(acme.tenant):
        assert StripeEvent.objects.get().status == "failed"


def test_another_tenants_event_is_404(outsider, acme):
    (stripe_id,) = stored(acme.tenant, event("charge.succeeded", T0))
    with tenant_scope(acme.tenant):
        StripeEvent.objects.update(status="failed", available_at=None)
    assert outsider.get(f"/api/v1/events/{stripe_id}/").status_code == 404
    assert outsider.post(f"/api/v1/events/{stripe_id}/reprocess/").status_code == 404
    with tenant_scope(acme.tenant):
        assert StripeEvent.objects.get().status == "failed"


@pytest.mark.parametrize("rows", [1, 20])
def test_list_query_count(api, acme, django_assert_num_queries, rows):
    stored(acme.tenant, *[event("charge.succeeded", T0) for _ in range(rows)])
    api.get("/api/v1/status/")
    with django_assert_num_queries(2):
        response = api.get("/api/v1/events/")
    assert len(response.json()["results"]) == rows
