"""Operator actions in the admin (issue 7): disabling a tenant, rotating a webhook URL."""

import pytest
from django.contrib.auth import get_user_model

from tenants.models import Tenant
from tenants.scope import tenant_scope
from tests.conftest import load_fixture_event, post_event
from webhooks.ingest import TENANT_DISABLED_MESSAGE
from webhooks.models import StripeEvent, WebhookEndpoint, WebhookRejection

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-op-123456")
    client.force_login(user)
    return user


def events_of(tenant):
    with tenant_scope(tenant):
        return list(StripeEvent.objects.values_list("stripe_id", flat=True))


def rejections_of(tenant):
    with tenant_scope(tenant):
        return {r.reason: r.count for r in WebhookRejection.objects.all()}


def test_a_disabled_tenant_gets_403_and_nothing_is_stored_until_enabled_again(client, operator, acme, globex):
    response = client.post("/admin/tenants/tenant/", {"action": "disable_tenants", "_selected_action": [acme.tenant.pk]})
    assert response.status_code == 302
    assert Tenant.objects.get(pk=acme.tenant.pk).is_active is False
    assert Tenant.objects.get(pk=globex.tenant.pk).is_active is True  # only the selected one

    event = load_fixture_event("charge.succeeded.json", id="evt_while_disabled")
    refused = post_event(client, acme.endpoint, event)
    assert refused.status_code == 403
    assert refused.json() == {"received": False, "error": TENANT_DISABLED_MESSAGE}
    assert events_of(acme.tenant) == []
    assert rejections_of(acme.tenant) == {"tenant_disabled": 1}
    # Another tenant is not affected.
    assert post_event(client, globex.endpoint, load_fixture_event("charge.succeeded.json"),
                      secret="whsec_globexsecret987654321").status_code == 200

    client.post("/admin/tenants/tenant/", {"action": "enable_tenants", "_selected_action": [acme.tenant.pk]})
    assert Tenant.objects.get(pk=acme.tenant.pk).is_active is True
    # Stripe's retry of the refused delivery now lands.
    assert post_event(client, acme.endpoint, event).json() == {"received": True, "duplicate": False}
    assert events_of(acme.tenant) == ["evt_while_disabled"]


def test_disabling_an_already_disabled_tenant_says_so_and_changes_nothing(client, operator, acme):
    Tenant.objects.filter(pk=acme.tenant.pk).update(is_active=False)
    response = client.post(
        "/admin/tenants/tenant/", {"action": "disable_tenants", "_selected_action": [acme.tenant.pk]}, follow=True
    )
    assert "Nothing to do: the selected tenants were already disabled." in response.content.decode()
    assert Tenant.objects.get(pk=acme.tenant.pk).is_active is False


def test_rotating_the_url_token_asks_first_then_the_old_url_stops_working(client, operator, acme, globex):
    old_token, old_path = acme.endpoint.token, acme.endpoint.path
    changelist = "/admin/webhooks/webhookendpoint/"
    confirm = client.post(changelist, {"action": "rotate_url_token", "_selected_action": [acme.endpoint.pk]})
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "Its current URL stops accepting deliveries at once" in page and old_path in page
    assert WebhookEndpoint.all_tenants.get(pk=acme.endpoint.pk).token == old_token  # not yet

    done = client.post(
        changelist, {"action": "rotate_url_token", "_selected_action": [acme.endpoint.pk], "confirmed": "yes"},
        follow=True,
    )
    rotated = WebhookEndpoint.all_tenants.get(pk=acme.endpoint.pk)
    assert rotated.token != old_token and len(rotated.token) == len(old_token)
    assert rotated.path in done.content.decode()
    assert WebhookEndpoint.all_tenants.get(pk=globex.endpoint.pk).token == globex.endpoint.token

    event = load_fixture_event("charge.succeeded.json")
    assert post_event(client, acme.endpoint, event, path=old_path).status_code == 404
    assert post_event(client, rotated, event).status_code == 200
    assert events_of(acme.tenant) == [event["id"]]


def _changelist_queries(client, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_tenant_list_shows_usage_backlog_and_open_anomalies_in_constant_queries(client, operator, make_tenant):
    from tests.anomalies.events import T0, event, minutes, process, store

    first = make_tenant("First")
    store(first.tenant, event("charge.succeeded", T0, customer="cus_A", amount=4900),
          event("charge.succeeded", T0 + minutes(1), customer="cus_A", amount=4900))
    process()
    store(first.tenant, event("charge.failed", T0 + minutes(5), customer="cus_B", amount=100))
    one = _changelist_queries(client, "/admin/tenants/tenant/")
    page = client.get("/admin/tenants/tenant/").content.decode()
    assert "1 high" in page  # the duplicate charge
    assert "2 /" not in page and ">2<" in page  # two processed this month, no quota
    assert "1 / 0" in page  # one queued, none failed
    assert "never" not in page  # imported events count as received too
    for n in range(20):
        make_tenant(f"More {n}")
    assert _changelist_queries(client, "/admin/tenants/tenant/") == one


def test_the_event_list_does_not_grow_its_queries_with_rows(client, operator, acme):
    from tests.anomalies.events import T0, event, minutes, store

    store(acme.tenant, event("charge.succeeded", T0, customer="cus_A", amount=100))
    one = _changelist_queries(client, "/admin/webhooks/stripeevent/")
    store(acme.tenant, *[event("charge.succeeded", T0 + minutes(i), customer="cus_A", amount=100) for i in range(20)])
    assert _changelist_queries(client, "/admin/webhooks/stripeevent/") == one
    page = client.get("/admin/webhooks/stripeevent/?type=charge.succeeded&status__exact=pending").content.decode()
    assert page.count("charge.succeeded</td>") == 21


def test_reprocess_actions_queue_failed_events_again_and_skip_the_others(client, operator, acme, globex):
    from tests.anomalies.events import T0, event, minutes, store

    store(acme.tenant, *[event("charge.succeeded", T0 + minutes(i), customer="cus_A", amount=100) for i in range(3)])
    store(globex.tenant, event("charge.succeeded", T0, customer="cus_A", amount=100))
    StripeEvent.all_tenants.update(status="failed", available_at=None, attempts=8)
    acme_events = list(StripeEvent.all_tenants.filter(tenant=acme.tenant).order_by("pk"))
    StripeEvent.all_tenants.filter(pk=acme_events[2].pk).update(status="processed")

    changelist = "/admin/webhooks/stripeevent/"
    response = client.post(changelist, {"action": "reprocess_selected",
                                        "_selected_action": [acme_events[0].pk, acme_events[2].pk]}, follow=True)
    assert "Queued 1 failed event(s) again. 1 skipped: only failed events can be reprocessed." in response.content.decode()
    assert StripeEvent.all_tenants.get(pk=acme_events[0].pk).status == "pending"
    assert StripeEvent.all_tenants.get(pk=acme_events[1].pk).status == "failed"

    client.post(changelist, {"action": "reprocess_all_failed_of_tenants", "_selected_action": [acme_events[0].pk]})
    assert StripeEvent.all_tenants.get(pk=acme_events[1].pk).status == "pending"
    assert StripeEvent.all_tenants.get(pk=acme_events[1].pk).attempts == 0
    # Globex was not selected: its failure stays.
    assert StripeEvent.all_tenants.get(tenant=globex.tenant).status == "failed"


def test_revoking_keys_in_the_admin_stops_them_working(client, operator, acme):
    from tenants.models import ApiKey

    key = ApiKey.all_tenants.get(tenant=acme.tenant)
    api = "/api/v1/status/"
    assert client.get(api, HTTP_AUTHORIZATION=f"Bearer {acme.api_key}").status_code == 200
    client.post("/admin/tenants/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
    assert ApiKey.all_tenants.get(pk=key.pk).revoked_at is not None
    assert client.get(api, HTTP_AUTHORIZATION=f"Bearer {acme.api_key}").status_code == 401


def test_the_tenant_page_lists_its_channels(client, operator, acme):
    from alerts.channels import create_channel

    with tenant_scope(acme.tenant):
        create_channel(name="Ops mail", kind="email", config={"to": ["ops@example.com"]})
    page = client.get(f"/admin/tenants/tenant/{acme.tenant.pk}/change/").content.decode()
    assert "Ops mail" in page


def test_large_event_lists_use_the_planner_estimate_on_postgresql(acme, monkeypatch):
    from django.db import connection

    from tests.anomalies.events import T0, event, minutes, store
    from webhooks import admin_pagination

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL estimates only; SQLite always counts")
    store(acme.tenant, *[event("charge.succeeded", T0 + minutes(i), customer="cus_A", amount=100) for i in range(30)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE webhooks_stripeevent")
    events = StripeEvent.all_tenants.order_by("pk")
    monkeypatch.setattr(admin_pagination, "ESTIMATE_ABOVE", 5)
    assert admin_pagination.EstimatedCountPaginator(events, 10).count == 30  # reltuples after ANALYZE
    filtered = events.filter(tenant=acme.tenant, customer_id="cus_A")
    assert admin_pagination.EstimatedCountPaginator(filtered, 10).count > 5  # the EXPLAIN estimate
    monkeypatch.setattr(admin_pagination, "ESTIMATE_ABOVE", 1000)
    assert admin_pagination.EstimatedCountPaginator(filtered, 10).count == 30  # small: counted exactly
