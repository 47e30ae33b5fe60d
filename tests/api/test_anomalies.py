from datetime import timedelta

import pytest
from django.utils import timezone

from anomalies.models import Anomaly, AnomalyStatusChange
from tenants.scope import tenant_scope
from tests.api.conftest import T0, error, make_anomaly

pytestmark = pytest.mark.django_db

FIELDS = {"id", "detector", "severity", "status", "title", "summary", "customer_id", "livemode",
          "first_seen_at", "last_seen_at", "occurrences", "evidence"}


def ids(response):
    return [a["id"] for a in response.json()["results"]]


def test_list_returns_the_design_fields_newest_first(api, acme):
    older, newer = make_anomaly(acme.tenant), make_anomaly(acme.tenant)
    response = api.get("/api/v1/anomalies/")
    assert response.status_code == 200
    body = response.json()
    assert ids(response) == [str(newer.public_id), str(older.public_id)]
    assert set(body["results"][0]) == FIELDS
    assert body["results"][0]["evidence"]["event_ids"]
    assert body["next"] is None and body["previous"] is None


def test_retrieve_times_are_utc_iso(api, acme):
    anomaly = make_anomaly(acme.tenant, first_seen_at=T0, last_seen_at=T0)
    body = api.get(f"/api/v1/anomalies/{anomaly.public_id}/").json()
    assert body["first_seen_at"] == "2026-03-02T12:00:00Z"
    assert body["id"] == str(anomaly.public_id)
    assert body["status"] == "open"


@pytest.mark.parametrize("query, expected", [
    ("status=open", {"a"}),
    ("status=open&status=resolved", {"a", "b"}),
    ("severity=critical", {"c"}),
    ("detector=revenue_drop", {"b"}),
    ("customer_id=cus_x", {"c"}),
    ("livemode=false", {"c"}),
    ("first_seen_after=2026-03-05T00:00:00Z", {"b", "c"}),
    ("first_seen_before=2026-03-05T00:00:00Z", {"a"}),
])
def test_filters(api, acme, query, expected):
    rows = {
        "a": make_anomaly(acme.tenant, first_seen_at=T0),
        "b": make_anomaly(acme.tenant, status="resolved", detector="revenue_drop", first_seen_at=T0 + timedelta(days=5)),
        "c": make_anomaly(acme.tenant, status="acknowledged", severity="critical", customer_id="cus_x",
                          livemode=False, first_seen_at=T0 + timedelta(days=6)),
    }
    by_id = {str(a.public_id): name for name, a in rows.items()}
    response = api.get(f"/api/v1/anomalies/?{query}")
    assert response.status_code == 200
    assert {by_id[i] for i in ids(response)} == expected


def test_bad_filter_value_is_400_with_field(api):
    response = api.get("/api/v1/anomalies/?status=bogus&first_seen_after=yesterday")
    assert response.status_code == 400
    body = error(response)
    assert body["code"] == "invalid"
    assert set(body["fields"]) == {"status", "first_seen_after"}


def test_cursor_pagination_walks_every_row_once(api, acme):
    made = {str(make_anomaly(acme.tenant).public_id) for _ in range(5)}
    seen, url = [], "/api/v1/anomalies/?page_size=2"
    while url:
        body = api.get(url).json()
        assert len(body["results"]) <= 2
        seen += [a["id"] for a in body["results"]]
        url = body["next"]
    assert len(seen) == 5 and set(seen) == made


def test_bad_cursor_is_404(api):
    response = api.get("/api/v1/anomalies/?cursor=garbage")
    assert response.status_code == 404
    assert error(response)["code"] == "not_found"


def test_missing_and_malformed_ids_are_404(api):
    for anomaly_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        response = api.get(f"/api/v1/anomalies/{anomaly_id}/")
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}


@pytest.mark.parametrize("action, body, status", [
    ("acknowledge", {}, "acknowledged"),
    ("resolve", {"reason": "refunded the customer"}, "resolved"),
    ("false_positive", {"reason": "a test charge"}, "false_positive"),
])
def test_actions_change_status_and_record_the_key(api, acme, action, body, status):
    anomaly = make_anomaly(acme.tenant)
    response = api.post(f"/api/v1/anomalies/{anomaly.public_id}/{action}/", body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == status
    with tenant_scope(acme.tenant):
        change = AnomalyStatusChange.objects.get(anomaly=anomaly)
    assert change.to_status == status
    assert change.actor_label.startswith("api key Default key (bw_")
    assert change.reason == body.get("reason", "")


def test_snooze_until_and_reopen(api, acme):
    anomaly = make_anomaly(acme.tenant)
    until = (timezone.now() + timedelta(hours=2)).isoformat()
    response = api.post(f"/api/v1/anomalies/{anomaly.public_id}/snooze/", {"until": until}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "snoozed"
    response = api.post(f"/api/v1/anomalies/{anomaly.public_id}/reopen/", {}, format="json")
    assert response.json()["status"] == "open"


def test_snooze_without_until_is_400_with_field(api, acme):
    anomaly = make_anomaly(acme.tenant)
    response = api.post(f"/api/v1/anomalies/{anomaly.public_id}/snooze/", {}, format="json")
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "invalid", "message": "Some fields are invalid.",
                                         "fields": {"until": "This field is required."}}}


def test_snooze_into_the_past_is_400_from_the_lifecycle(api, acme):
    anomaly = make_anomaly(acme.tenant)
    until = (timezone.now() - timedelta(hours=1)).isoformat()
    response = api.post(f"/api/v1/anomalies/{anomaly.public_id}/snooze/", {"until": until}, format="json")
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "invalid", "message": "'until' must be in the future",
                                         "fields": {"until": "'until' must be in the future"}}}


def test_false_positive_needs_a_reason(api, acme):
    anomaly = make_anomaly(acme.tenant)
    response = api.post(f"/api/v1/anomalies/{anomaly.public_id}/false_positive/", {"reason": ""}, format="json")
    assert response.status_code == 400
    assert error(response)["fields"] == {"reason": "This field may not be blank."}


def test_refused_transition_is_409(api, acme):
    anomaly = make_anomaly(acme.tenant, status="resolved")
    response = api.post(f"/api/v1/anomalies/{anomaly.public_id}/acknowledge/", {}, format="json")
    assert response.status_code == 409
    assert response.json() == {"error": {"code": "invalid_transition",
                                         "message": "cannot acknowledge an anomaly that is resolved", "fields": {}}}


def test_body_that_is_not_an_object_is_400(api, acme):
    anomaly = make_anomaly(acme.tenant)
    response = api.post(f"/api/v1/anomalies/{anomaly.public_id}/snooze/", [1, 2], format="json")
    assert response.status_code == 400
    assert "non_field_errors" in error(response)["fields"]


def test_another_tenants_anomaly_is_404_and_unchanged(outsider, acme):
    anomaly = make_anomaly(acme.tenant)
    assert outsider.get(f"/api/v1/anomalies/{anomaly.public_id}/").status_code == 404
    response = outsider.post(f"/api/v1/anomalies/{anomaly.public_id}/resolve/", {}, format="json")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}
    assert outsider.get("/api/v1/anomalies/").json()["results"] == []
    with tenant_scope(acme.tenant):
        assert Anomaly.objects.get().status == "open"
        assert not AnomalyStatusChange.objects.exists()


@pytest.mark.parametrize("rows", [1, 20])
def test_list_query_count_does_not_grow_with_rows(api, acme, django_assert_num_queries, rows):
    for _ in range(rows):
        make_anomaly(acme.tenant)
    api.get("/api/v1/status/")  # last_used_at written once, outside the measured request
    with django_assert_num_queries(2):  # the key, the page
        response = api.get("/api/v1/anomalies/")
    assert len(response.json()["results"]) == rows
