"""Detectors page: on/off, thresholds with inline errors (nothing stored), the preview that changes nothing."""

import pytest

from anomalies.models import Anomaly, DetectorConfig
from tenants.scope import tenant_scope
from tests.dashboard.conftest import url

pytestmark = pytest.mark.django_db


def configs(tenant):
    with tenant_scope(tenant):
        return list(DetectorConfig.objects.values_list("detector", "enabled", "thresholds"))


def test_lists_every_detector_with_ranges(acme, owner):
    page = owner.get(url(acme.tenant, "detectors/")).content.decode()
    assert 'id="revenue_drop"' in page and 'id="card_testing"' in page
    assert "allowed 0.05 – 0.95" in page


def test_save_thresholds_and_switch_off(acme, admin):
    response = admin.post(url(acme.tenant, "detectors/revenue_drop/"), {"drop": "0.25", "z_score": "-3.0"})
    assert response.status_code == 302 and response.url.endswith("/detectors/#revenue_drop")
    assert configs(acme.tenant) == [("revenue_drop", False, {"drop": 0.25})]
    admin.post(url(acme.tenant, "detectors/revenue_drop/"), {"enabled": "on", "drop": "0.25"})
    assert configs(acme.tenant) == [("revenue_drop", True, {"drop": 0.25})]


@pytest.mark.parametrize("value, message", [
    ("2", "must be between 0.05 and 0.95"),
    ("lots", "must be a number between 0.05 and 0.95"),
])
def test_out_of_range_shows_inline_error_and_stores_nothing(acme, owner, value, message):
    response = owner.post(url(acme.tenant, "detectors/revenue_drop/"), {"enabled": "on", "drop": value})
    assert response.status_code == 400
    page = response.content.decode()
    assert f'data-testid="threshold-error">{message}<' in page
    assert f'value="{value}"' in page  # what the user typed stays in the field
    assert configs(acme.tenant) == []


def test_whole_number_threshold(acme, owner):
    response = owner.post(url(acme.tenant, "detectors/revenue_drop/"), {"enabled": "on", "min_history_days": "2.5"})
    assert "must be a whole number between 1 and 28" in response.content.decode()
    assert configs(acme.tenant) == []


def test_unknown_detector_is_404(acme, owner):
    assert owner.post(url(acme.tenant, "detectors/nope/"), {"enabled": "on"}).status_code == 404


def test_preview_changes_nothing(acme, owner):
    response = owner.post(url(acme.tenant, "detectors/revenue_drop/preview/"), {"drop": "0.3"},
                          HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "nothing was saved or changed" in response.content.decode()
    assert configs(acme.tenant) == []
    with tenant_scope(acme.tenant):
        assert not Anomaly.objects.exists()


def test_preview_with_an_out_of_range_value_explains(acme, owner):
    response = owner.post(url(acme.tenant, "detectors/revenue_drop/preview/"), {"drop": "7"})
    assert response.status_code == 400 and "must be between 0.05 and 0.95" in response.content.decode()


def test_viewer_cannot_save(acme, viewer):
    assert viewer.post(url(acme.tenant, "detectors/revenue_drop/"), {"drop": "0.3"}).status_code == 403
    assert configs(acme.tenant) == []
