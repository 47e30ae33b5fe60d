"""API test helpers: clients authenticated with a tenant's key, and rows to read."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from anomalies.models import Anomaly
from tenants.keys import issue_key
from tenants.scope import tenant_scope

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
_n = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    cache.clear()
    yield
    cache.clear()


def client_for(key_text: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_text}")
    return client


@pytest.fixture
def api(acme):
    """Acme's read-write client (its default key from create_tenant)."""
    return client_for(acme.api_key)


@pytest.fixture
def readonly_api(acme):
    with tenant_scope(acme.tenant):
        _, text = issue_key(acme.tenant, "read only", read_only=True)
    return client_for(text)


@pytest.fixture
def outsider(globex):
    """Globex's read-write client: a valid key of another tenant."""
    return client_for(globex.api_key)


def make_anomaly(tenant, **fields) -> Anomaly:
    n = next(_n)
    values = dict(
        livemode=True, detector="duplicate_charge", fingerprint=f"fp{n}", severity="high",
        title=f"Anomaly {n}", summary="Something happened", customer_id=f"cus_{n}",
        evidence={"event_ids": [f"evt_{n}"], "amount": 1000},
        first_seen_at=T0 + timedelta(minutes=n), last_seen_at=T0 + timedelta(minutes=n),
    )
    values.update(fields)
    with tenant_scope(tenant):
        return Anomaly.objects.create(tenant=tenant, **values)


def error(response) -> dict:
    return response.json()["error"]
