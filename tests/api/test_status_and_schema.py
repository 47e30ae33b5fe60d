from datetime import timedelta

import pytest
import yaml
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.scope import tenant_scope
from tests.anomalies.events import T0, event, store
from webhooks.models import StripeEvent

pytestmark = pytest.mark.django_db


def test_status_of_an_empty_tenant(api):
    response = api.get("/api/v1/status/")
    assert response.status_code == 200
    assert response.json() == {"pending_events": 0, "failed_events": 0, "oldest_pending_age_seconds": None,
                               "last_event_received_at": None}


def test_status_counts_the_queue(api, acme):
    received = timezone.now() - timedelta(minutes=10)
    store(acme.tenant, event("charge.succeeded", T0), event("charge.failed", T0), received_at=received)
    with tenant_scope(acme.tenant):
        StripeEvent.objects.filter(type="charge.failed").update(status="failed", available_at=None)
    body = api.get("/api/v1/status/").json()
    assert body["pending_events"] == 1
    assert body["failed_events"] == 1
    assert 590 <= body["oldest_pending_age_seconds"] <= 700
    assert body["last_event_received_at"].endswith("Z")


def test_status_of_one_tenant_ignores_another(outsider, acme):
    store(acme.tenant, event("charge.succeeded", T0))
    assert outsider.get("/api/v1/status/").json()["pending_events"] == 0


@pytest.mark.parametrize("rows", [1, 20])
def test_status_query_count(api, acme, django_assert_num_queries, rows):
    store(acme.tenant, *[event("charge.succeeded", T0) for _ in range(rows)])
    api.get("/api/v1/status/")
    # The key lookup, then three small indexed queries (queue, failures, newest arrival).
    with django_assert_num_queries(4):
        api.get("/api/v1/status/")


def test_schema_is_served_without_auth_and_documents_errors():
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert "/api/v1/anomalies/{id}/acknowledge/" in paths
    assert not any(p.startswith("/api/v1/t/") for p in paths)
    ack = paths["/api/v1/anomalies/{id}/acknowledge/"]["post"]
    assert {"401", "403", "404", "409", "429"} <= set(ack["responses"])
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert "401" in operation["responses"], (method, path)


def test_schema_validates():
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_swagger_ui_is_served_with_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/api/schema/" in html
    assert "cdn.jsdelivr" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
