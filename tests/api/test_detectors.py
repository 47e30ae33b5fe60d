import pytest

from anomalies.models import Anomaly, DetectorConfig
from anomalies.registry import load_detectors
from tenants.scope import tenant_scope
from tests.api.conftest import error

pytestmark = pytest.mark.django_db


def test_list_every_detector_with_schema(api):
    body = api.get("/api/v1/detectors/").json()
    assert [d["name"] for d in body] == sorted(load_detectors())
    revenue = next(d for d in body if d["name"] == "revenue_drop")
    assert revenue["enabled"] is True
    assert revenue["thresholds"]["drop"] == 0.15
    drop = next(t for t in revenue["schema"] if t["name"] == "drop")
    assert drop == {"name": "drop", "type": "number", "default": 0.15, "min": 0.05, "max": 0.95, "help": drop["help"]}


def test_retrieve_and_unknown(api):
    assert api.get("/api/v1/detectors/revenue_drop/").json()["name"] == "revenue_drop"
    response = api.get("/api/v1/detectors/no_such/")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}
    assert api.patch("/api/v1/detectors/no_such/", {"enabled": False}, format="json").status_code == 404


def test_update_thresholds_and_enabled(api, acme):
    response = api.patch("/api/v1/detectors/revenue_drop/", {"enabled": False, "thresholds": {"drop": 0.3}},
                         format="json")
    assert response.status_code == 200
    assert response.json()["enabled"] is False
    assert response.json()["thresholds"]["drop"] == 0.3
    with tenant_scope(acme.tenant):
        config = DetectorConfig.objects.get(detector="revenue_drop")
    assert (config.enabled, config.thresholds) == (False, {"drop": 0.3})


def test_out_of_range_threshold_is_400_per_field_and_changes_nothing(api, acme):
    response = api.patch("/api/v1/detectors/revenue_drop/",
                         {"thresholds": {"drop": 5, "nope": 1, "min_history_days": 2.5}}, format="json")
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "invalid", "message": "Some thresholds are invalid.", "fields": {
        "thresholds.drop": "must be between 0.05 and 0.95",
        "thresholds.nope": "unknown threshold; known: critical_drop, drop, min_expected, min_history_days, z_score",
        "thresholds.min_history_days": "must be a whole number between 1 and 28",
    }}}
    with tenant_scope(acme.tenant):
        assert not DetectorConfig.objects.exists()


def test_non_number_threshold_is_400(api):
    response = api.patch("/api/v1/detectors/revenue_drop/", {"thresholds": {"drop": "lots"}}, format="json")
    assert response.status_code == 400
    assert error(response)["fields"] == {"thresholds.drop": "A valid number is required."}


def test_huge_integer_threshold_is_400_not_500(api):
    """Fuzz regression: 10**400 overflowed float()."""
    response = api.patch("/api/v1/detectors/revenue_drop/", '{"thresholds": {"min_expected": 1' + "0" * 400 + "}}",
                         content_type="application/json")
    assert response.status_code == 400


def test_infinite_threshold_is_refused_by_the_domain():
    from anomalies.detectors.base import ThresholdError
    from anomalies.registry import get_detector

    with pytest.raises(ThresholdError):
        get_detector("revenue_drop").validate_thresholds({"min_history_days": float("inf")})


def test_read_only_key_cannot_update(readonly_api, acme):
    assert readonly_api.patch("/api/v1/detectors/revenue_drop/", {"enabled": False}, format="json").status_code == 403
    with tenant_scope(acme.tenant):
        assert not DetectorConfig.objects.exists()



def test_backtest_returns_what_would_fire_and_changes_nothing(api, acme, monkeypatch):
    from anomalies import dry_run, engine

    def fake_backtest(tenant, start, end, only=None):
        outcome = engine.Outcome()
        outcome.opened.append(Anomaly.objects.create(
            tenant=tenant, livemode=True, detector=only or "revenue_drop", fingerprint="x", severity="high",
            title="would fire", first_seen_at=end, last_seen_at=end, evidence={"event_ids": []}))
        return outcome

    monkeypatch.setattr(dry_run, "backtest", fake_backtest)
    response = api.post("/api/v1/detectors/backtest/",
                        {"days": 7, "detector": "revenue_drop", "thresholds": {"drop": 0.1}}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [a["title"] for a in body["opened"]] == ["would fire"]
    assert body["updated"] == [] and body["recovered"] == [] and body["errors"] == []
    with tenant_scope(acme.tenant):
        assert not Anomaly.objects.exists()
        assert not DetectorConfig.objects.exists()


def test_backtest_validation(api):
    response = api.post("/api/v1/detectors/backtest/", {"days": 0, "thresholds": {"drop": 0.1}}, format="json")
    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"days"}
    response = api.post("/api/v1/detectors/backtest/", {"thresholds": {"drop": 0.1}}, format="json")
    assert error(response)["fields"] == {"detector": "Name the detector whose thresholds to try."}
    response = api.post("/api/v1/detectors/backtest/", {"detector": "nope"}, format="json")
    assert response.status_code == 404
    response = api.post("/api/v1/detectors/backtest/", {"detector": "revenue_drop", "thresholds": {"drop": 9}},
                        format="json")
    assert error(response)["fields"] == {"thresholds.drop": "must be between 0.05 and 0.95"}


def test_real_backtest_on_history_runs(api, acme):
    from tests.anomalies.events import T0, event, store

    store(acme.tenant, *[event("charge.succeeded", T0) for _ in range(3)])
    response = api.post("/api/v1/detectors/backtest/", {"days": 3}, format="json")
    assert response.status_code == 200
    assert response.json()["errors"] == []


def test_read_only_key_cannot_backtest(readonly_api):
    assert readonly_api.post("/api/v1/detectors/backtest/", {"days": 3}, format="json").status_code == 403


@pytest.mark.parametrize("overrides", [1, 14])
def test_list_query_count(api, acme, django_assert_num_queries, overrides):
    names = sorted(load_detectors())[:overrides]
    with tenant_scope(acme.tenant):
        for name in names:
            DetectorConfig.objects.create(tenant=acme.tenant, detector=name, enabled=False)
    api.get("/api/v1/status/")
    with django_assert_num_queries(2):
        body = api.get("/api/v1/detectors/").json()
    assert sum(not d["enabled"] for d in body) == overrides
