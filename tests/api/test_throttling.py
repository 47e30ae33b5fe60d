import pytest

from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db


def test_over_the_rate_is_429_with_retry_after_per_key(api, outsider, settings):
    settings.BILLINGWATCH_API_RATE = "3/min"
    for _ in range(3):
        assert api.get("/api/v1/status/").status_code == 200
    response = api.get("/api/v1/status/")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    body = response.json()["error"]
    assert body["code"] == "throttled" and body["fields"] == {}
    assert body["message"].startswith("Request was throttled.")
    assert outsider.get("/api/v1/status/").status_code == 200  # another key has its own budget


def test_throttling_off_when_the_rate_is_empty(api, settings):
    settings.BILLINGWATCH_API_RATE = ""
    for _ in range(5):
        assert api.get("/api/v1/status/").status_code == 200


def test_bad_keys_are_refused_before_throttling(acme, settings):
    settings.BILLINGWATCH_API_RATE = "1/min"
    for _ in range(3):
        assert client_for("bw_nope_nope").get("/api/v1/status/").status_code == 401
