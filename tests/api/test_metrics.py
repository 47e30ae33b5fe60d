from datetime import timedelta

import pytest

from tests.anomalies.events import T0, event, store
from tests.api.conftest import error

pytestmark = pytest.mark.django_db

RANGE = "start=2026-02-01&end=2026-03-03"


def test_revenue_per_currency_per_day_with_baseline(api, acme):
    history = [event("charge.succeeded", T0 - timedelta(days=d), amount=10_000, currency="usd") for d in range(1, 30)]
    store(acme.tenant, *history, event("charge.succeeded", T0, amount=500, currency="eur"))
    response = api.get(f"/api/v1/metrics/revenue/?{RANGE}")
    assert response.status_code == 200
    body = response.json()
    assert (body["start"], body["end"], body["timezone"], body["livemode"]) == ("2026-02-01", "2026-03-03", "UTC", True)
    currencies = {c["currency"]: c["days"] for c in body["currencies"]}
    assert set(currencies) == {"eur", "usd"}
    usd = {d["day"]: d for d in currencies["usd"]}
    assert len(usd) == 31
    assert usd["2026-03-01"]["amount"] == 10_000
    assert usd["2026-03-01"]["baseline"] == 10_000
    assert usd["2026-03-02"]["amount"] == 0
    assert {d["day"]: d["amount"] for d in currencies["eur"]}["2026-03-02"] == 500


def test_charge_success_per_hour(api, acme):
    store(acme.tenant, event("charge.succeeded", T0), event("charge.succeeded", T0 + timedelta(minutes=5)),
          event("charge.failed", T0 + timedelta(minutes=9)), event("charge.failed", T0 + timedelta(hours=2)))
    body = api.get(f"/api/v1/metrics/charge-success/?{RANGE}").json()
    assert body["hours"] == [
        {"hour": "2026-03-02T12:00:00Z", "succeeded": 2, "failed": 1, "success_rate": 0.6667},
        {"hour": "2026-03-02T14:00:00Z", "succeeded": 0, "failed": 1, "success_rate": 0.0},
    ]


def test_disputes_and_refunds_per_day(api, acme):
    store(acme.tenant, event("charge.dispute.created", T0, amount=700, currency="usd"),
          event("charge.refunded", T0, amount=2000, amount_refunded=300, currency="usd", refunds=None))
    body = api.get(f"/api/v1/metrics/disputes-refunds/?{RANGE}").json()
    (usd,) = body["currencies"]
    day = next(d for d in usd["days"] if d["day"] == "2026-03-02")
    assert day == {"day": "2026-03-02", "disputes": 1, "disputed_amount": 700, "refunds": 1, "refunded_amount": 300}


def test_test_mode_is_separate(api, acme):
    store(acme.tenant, event("charge.succeeded", T0, livemode=False))
    assert api.get(f"/api/v1/metrics/charge-success/?{RANGE}").json()["hours"] == []
    assert len(api.get(f"/api/v1/metrics/charge-success/?{RANGE}&livemode=false").json()["hours"]) == 1


@pytest.mark.parametrize("query, fields", [
    ("start=2026-03-05&end=2026-03-01", {"end"}),
    ("start=2025-01-01&end=2026-03-01", {"start"}),
    ("start=yesterday", {"start"}),
    ("livemode=maybe", {"livemode"}),
])
def test_bad_ranges_are_400(api, query, fields):
    for name in ("revenue", "charge-success", "disputes-refunds"):
        response = api.get(f"/api/v1/metrics/{name}/?{query}")
        assert response.status_code == 400
        assert set(error(response)["fields"]) == fields


def test_another_tenants_events_are_not_counted(outsider, acme):
    store(acme.tenant, event("charge.succeeded", T0))
    assert outsider.get(f"/api/v1/metrics/charge-success/?{RANGE}").json()["hours"] == []


@pytest.mark.parametrize("rows", [1, 20])
def test_query_counts_do_not_grow(api, acme, django_assert_num_queries, rows):
    store(acme.tenant, *[event(t, T0 + timedelta(hours=n), amount=100, currency="usd")
                         for n in range(rows) for t in ("charge.succeeded", "charge.dispute.created")])
    api.get("/api/v1/status/")
    with django_assert_num_queries(4):  # key; charges, renewal invoices, paid invoices (the baseline)
        api.get(f"/api/v1/metrics/revenue/?{RANGE}")
    with django_assert_num_queries(2):
        api.get(f"/api/v1/metrics/charge-success/?{RANGE}")
    with django_assert_num_queries(3):  # key, disputes, refunds
        api.get(f"/api/v1/metrics/disputes-refunds/?{RANGE}")
