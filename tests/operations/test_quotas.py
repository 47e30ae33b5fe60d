"""Plans and quotas: over quota, events are stored but held, and released later (issue 7)."""

from datetime import UTC, datetime

import pytest

from tenants.models import MonthlyUsage, Plan, Tenant
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, event, minutes, process, store
from tests.conftest import load_fixture_event, post_event
from webhooks import quotas
from webhooks.housekeeping import run_due_jobs
from webhooks.models import StripeEvent

pytestmark = pytest.mark.django_db


def statuses(tenant) -> dict[str, int]:
    with tenant_scope(tenant):
        result: dict[str, int] = {}
        for status in StripeEvent.objects.values_list("status", flat=True):
            result[status] = result.get(status, 0) + 1
        return result


def charges(n: int) -> list[dict]:
    return [event("charge.succeeded", T0 + minutes(i), customer=f"cus_{i}", amount=100 + i) for i in range(n)]


@pytest.fixture
def small_plan(acme):
    plan = Plan.objects.create(name="small", monthly_event_quota=3)
    quotas.change_plan(acme.tenant, plan)
    acme.tenant.refresh_from_db()
    return plan


def test_at_the_boundary_the_quota_is_processed_and_the_next_event_held(acme, small_plan):
    store(acme.tenant, *charges(3))
    process()
    assert statuses(acme.tenant) == {"processed": 3}
    assert quotas.usage(acme.tenant).processed == 3 and not quotas.usage(acme.tenant).held
    store(acme.tenant, *charges(1))
    process()
    assert statuses(acme.tenant) == {"processed": 3, "over_quota": 1}
    usage = quotas.usage(acme.tenant)
    assert (usage.processed, usage.held, usage.quota, usage.over_quota) == (3, 1, 3, True)
    with tenant_scope(acme.tenant):
        held = StripeEvent.objects.get(status="over_quota")
    assert held.available_at is None  # out of the queue: the worker does not claim it again
    assert process() == 0


def test_over_quota_webhooks_still_answer_200_and_are_stored(client, acme, small_plan):
    for n in range(5):
        response = post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json", id=f"evt_q{n}"))
        assert response.status_code == 200 and response.json() == {"received": True, "duplicate": False}
    process()
    assert statuses(acme.tenant) == {"processed": 3, "over_quota": 2}


def test_other_tenants_are_not_held(acme, globex, small_plan):
    store(acme.tenant, *charges(5))
    store(globex.tenant, *charges(5))
    process()
    assert statuses(acme.tenant) == {"processed": 3, "over_quota": 2}
    assert statuses(globex.tenant) == {"processed": 5}


def test_raising_the_plan_releases_the_held_events(acme, small_plan):
    store(acme.tenant, *charges(5))
    process()
    bigger = Plan.objects.create(name="bigger", monthly_event_quota=100)
    assert quotas.change_plan(Tenant.objects.get(pk=acme.tenant.pk), bigger) == 2
    process()
    assert statuses(acme.tenant) == {"processed": 5}
    usage = quotas.usage(Tenant.objects.select_related("plan").get(pk=acme.tenant.pk))
    assert (usage.processed, usage.held) == (5, 0)


def test_a_plan_that_is_still_too_small_releases_nothing(acme, small_plan):
    store(acme.tenant, *charges(5))
    process()
    tiny = Plan.objects.create(name="tiny", monthly_event_quota=2)
    assert quotas.change_plan(Tenant.objects.get(pk=acme.tenant.pk), tiny) == 0
    assert statuses(acme.tenant) == {"processed": 3, "over_quota": 2}


def test_the_month_rolling_over_releases_held_events(acme, small_plan):
    store(acme.tenant, *charges(5))
    process()
    with tenant_scope(acme.tenant):  # as if all that happened last month
        MonthlyUsage.objects.update(month=datetime(2020, 1, 1).date())
    results = run_due_jobs()
    assert results["release_held_events"] == 2
    process()
    assert statuses(acme.tenant) == {"processed": 5}
    # The released events count in the month they were processed in.
    assert quotas.usage(Tenant.objects.select_related("plan").get(pk=acme.tenant.pk)).processed == 2


def test_retries_are_not_counted_twice(acme, small_plan):
    now = datetime.now(UTC)
    with tenant_scope(acme.tenant):
        assert quotas.admit(acme.tenant, 2, now) == 2
        admitted, held = quotas.record_first_attempts(acme.tenant, [(10, 1), (11, 3), (12, 1)])
    assert admitted == [10, 11] and held == [12]  # the retry (attempt 3) passes; one first attempt fits


def test_without_a_plan_events_are_counted_and_never_held(acme):
    store(acme.tenant, *charges(4))
    process()
    assert statuses(acme.tenant) == {"processed": 4}
    usage = quotas.usage(acme.tenant)
    assert (usage.processed, usage.held, usage.quota, usage.over_quota) == (4, 0, None, False)


def test_raising_the_plan_on_the_tenant_page_releases_held_events(client, acme, small_plan):
    from django.contrib.auth import get_user_model

    store(acme.tenant, *charges(5))
    process()
    bigger = Plan.objects.create(name="bigger", monthly_event_quota=100)
    client.force_login(get_user_model().objects.create_superuser("op", "op@example.com", "pw-op-123456"))
    page = client.get(f"/admin/tenants/tenant/{acme.tenant.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields}
    data.update(plan=bigger.pk, is_active="on")
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
        for inline_form in formset.formset.forms:
            data.update({inline_form.add_prefix(k): v for k, v in inline_form.initial.items() if v is not None})
            data[inline_form.add_prefix("id")] = inline_form.instance.pk
    response = client.post(f"/admin/tenants/tenant/{acme.tenant.pk}/change/", data, follow=True)
    assert "2 events held over quota are queued again." in response.content.decode()
    assert Tenant.objects.get(pk=acme.tenant.pk).plan == bigger
    process()
    assert statuses(acme.tenant) == {"processed": 5}
