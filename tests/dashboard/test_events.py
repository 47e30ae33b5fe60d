"""The events explorer: filters, payload, status and errors, reprocess (owners and admins)."""

import pytest

from tenants.scope import tenant_scope
from tests.anomalies.events import T0, event, store
from tests.dashboard.conftest import url
from webhooks.models import StripeEvent

pytestmark = pytest.mark.django_db


def ids_on(response) -> set[str]:
    import re

    return set(re.findall(r"<code>(evt_[^<]+)</code></a>", response.content.decode()))


def test_filters(acme, owner):
    charge = event("charge.succeeded", T0, customer="cus_a")
    failed = event("charge.failed", T0, customer="cus_b")
    store(acme.tenant, charge, failed)
    store(acme.tenant, event("charge.succeeded", T0, livemode=False))
    get = lambda q: ids_on(owner.get(url(acme.tenant, f"events/?{q}")))  # noqa: E731
    assert get("") == {charge["id"], failed["id"]}  # live mode only
    assert get("type=charge.failed") == {failed["id"]}
    assert get("customer_id=cus_a") == {charge["id"]}
    assert get("object_id=" + failed["data"]["object"]["id"]) == {failed["id"]}
    assert get("source=webhook") == set()
    assert get("status=pending&source=import") == {charge["id"], failed["id"]}
    assert get("created_after=2030-01-01") == set()


def test_detail_shows_payload_and_error(acme, owner):
    payload = event("charge.failed", T0)
    store(acme.tenant, payload)
    with tenant_scope(acme.tenant):
        StripeEvent.objects.update(status="failed", last_error="KeyError: 'amount'", available_at=None)
    page = owner.get(url(acme.tenant, f"events/{payload['id']}/")).content.decode()
    assert "&quot;object&quot;: &quot;event&quot;" in page
    assert "KeyError: &#x27;amount&#x27;" in page and ">Reprocess<" in page


def test_reprocess_failed_event(acme, admin):
    payload = event("charge.failed", T0)
    store(acme.tenant, payload)
    with tenant_scope(acme.tenant):
        StripeEvent.objects.update(status="failed", attempts=8, available_at=None)
    response = admin.post(url(acme.tenant, f"events/{payload['id']}/reprocess/"), follow=True)
    assert "is queued again" in response.content.decode()
    with tenant_scope(acme.tenant):
        assert StripeEvent.objects.values_list("status", "attempts").get() == ("pending", 0)


def test_reprocess_refuses_a_non_failed_event(acme, owner):
    payload = event("charge.failed", T0)
    store(acme.tenant, payload)
    response = owner.post(url(acme.tenant, f"events/{payload['id']}/reprocess/"), follow=True)
    assert "Not reprocessed: only failed events can be reprocessed; this one is pending." in response.content.decode()


def test_viewer_cannot_reprocess(acme, viewer):
    payload = event("charge.failed", T0)
    store(acme.tenant, payload)
    with tenant_scope(acme.tenant):
        StripeEvent.objects.update(status="failed", available_at=None)
    assert viewer.post(url(acme.tenant, f"events/{payload['id']}/reprocess/")).status_code == 403
    with tenant_scope(acme.tenant):
        assert StripeEvent.objects.get().status == "failed"


@pytest.mark.parametrize("rows", [1, 20])
def test_list_query_count_does_not_grow(acme, owner, rows, django_assert_num_queries):
    store(acme.tenant, *[event("charge.succeeded", T0) for _ in range(rows)])
    with django_assert_num_queries(6):  # session, user, membership, page, switcher, quota usage
        assert owner.get(url(acme.tenant, "events/")).status_code == 200


def test_csv_export(acme, owner):
    store(acme.tenant, event("charge.succeeded", T0), event("charge.failed", T0))
    response = owner.get(url(acme.tenant, "events/export.csv?type=charge.failed&status=pending"))
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert lines[0].startswith("stripe_id,type,livemode") and len(lines) == 2 and ",charge.failed," in lines[1]
