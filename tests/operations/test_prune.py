"""Retention: `manage.py prune` deletes old processed events and keeps what must be kept (issue 7)."""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from anomalies.lifecycle import change_status
from anomalies.models import Anomaly
from tenants.models import Plan
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, event, minutes, process, store
from webhooks import quotas
from webhooks.models import StripeEvent
from webhooks.retention import prune

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=5)


def ids(tenant, **filters) -> set[str]:
    with tenant_scope(tenant):
        return set(StripeEvent.objects.filter(**filters).values_list("stripe_id", flat=True))


@pytest.fixture
def month_plan(acme):
    plan = Plan.objects.create(name="30 days", retention_days=30)
    quotas.change_plan(acme.tenant, plan)
    return plan


def test_prune_deletes_old_processed_events_only(acme, globex, month_plan):
    old = store(acme.tenant, event("charge.succeeded", T0, customer="cus_1", amount=100), received_at=OLD)
    recent = store(acme.tenant, event("charge.succeeded", T0, customer="cus_2", amount=200), received_at=RECENT)
    process()
    old_pending = store(acme.tenant, event("charge.succeeded", T0, customer="cus_3", amount=300), received_at=OLD)
    old_failed = store(acme.tenant, event("charge.succeeded", T0, customer="cus_4", amount=400), received_at=OLD)
    with tenant_scope(acme.tenant):
        StripeEvent.objects.filter(stripe_id__in=old_failed).update(status="failed", available_at=None)
        StripeEvent.objects.filter(stripe_id__in=old_pending).update(available_at=None)  # stays pending
    other = store(globex.tenant, event("charge.succeeded", T0, customer="cus_1", amount=100), received_at=OLD)
    process()

    assert prune(now=NOW, dry_run=True) == {acme.tenant.slug: 1}
    assert ids(acme.tenant) == {*old, *recent, *old_pending, *old_failed}  # a dry run deletes nothing

    assert prune(now=NOW) == {acme.tenant.slug: 1}
    assert ids(acme.tenant) == {*recent, *old_pending, *old_failed}
    assert ids(globex.tenant) == set(other)  # no plan: kept forever


def test_prune_keeps_the_evidence_of_open_anomalies_but_not_of_resolved_ones(acme, month_plan):
    first = store(acme.tenant, event("charge.succeeded", T0, customer="cus_A", amount=4900),
                  event("charge.succeeded", T0 + minutes(1), customer="cus_A", amount=4900), received_at=OLD)
    second = store(acme.tenant, event("charge.succeeded", T0 + minutes(60), customer="cus_B", amount=700),
                   event("charge.succeeded", T0 + minutes(61), customer="cus_B", amount=700), received_at=OLD)
    process()
    with tenant_scope(acme.tenant):
        resolved = Anomaly.objects.get(customer_id="cus_B")
        change_status(resolved, "resolve", actor_label="test")
        assert Anomaly.objects.get(customer_id="cus_A").status == "open"
    assert prune(now=NOW) == {acme.tenant.slug: 2}
    assert ids(acme.tenant) == set(first)
    assert ids(acme.tenant).isdisjoint(second)


def test_prune_command_prints_counts(acme, month_plan):
    store(acme.tenant, event("charge.succeeded", T0, customer="cus_1", amount=100), received_at=OLD)
    process()
    out = StringIO()
    call_command("prune", "--dry-run", stdout=out)
    assert out.getvalue().splitlines() == [f"{acme.tenant.slug}: would delete 1 events", "would delete 1 events in 1 tenants"]
    out = StringIO()
    call_command("prune", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {acme.tenant.slug: 1}
    assert ids(acme.tenant) == set()
