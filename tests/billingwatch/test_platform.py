"""Settings, health, and the demo that `make run` starts with."""

from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection

from anomalies.models import Anomaly
from billingwatch.demo import DEMO_WEBHOOK_SECRET, ensure_demo
from tenants.scope import tenant_scope
from tests.conftest import load_fixture_event, post_event
from webhooks.models import StripeEvent


@pytest.mark.django_db
def test_sqlite_is_durable_by_default():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite settings only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 2  # FULL
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


@pytest.mark.django_db
def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_healthz_reports_a_dead_database(client):
    with mock.patch("django.db.backends.utils.CursorWrapper.execute", side_effect=DatabaseError("gone")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"


@pytest.mark.django_db
def test_demo_is_idempotent_and_receives_signed_webhooks(client, tmp_path, settings):
    settings.LOCAL_DIR = tmp_path
    first = ensure_demo()
    assert first.events_stored > 500  # 30 days of simulated history
    assert first.admin_password and len(first.admin_password) >= 12
    second = ensure_demo()
    assert second.events_stored == 0
    assert second.admin_password == first.admin_password
    with tenant_scope(first.tenant):
        assert StripeEvent.objects.count() == first.events_stored
        assert StripeEvent.objects.exclude(status="processed").count() == 0
        # The injected anomalies were found, and nothing else.
        detectors = set(Anomaly.objects.values_list("detector", flat=True))
        endpoint = first.tenant.webhook_endpoints.get()
    assert detectors == {"duplicate_charge", "negative_invoice", "dunning_failure", "refund_spike", "card_testing",
                         "charge_failure_spike"}
    response = post_event(client, endpoint, load_fixture_event("charge.succeeded.json"), secret=DEMO_WEBHOOK_SECRET)
    assert response.status_code == 200


@pytest.mark.django_db
def test_seed_demo_command(tmp_path, settings):
    settings.LOCAL_DIR = tmp_path
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "demo tenant 'demo': " in out.getvalue()
    assert "new events; webhook path /webhooks/stripe/" in out.getvalue()
