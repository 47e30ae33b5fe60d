"""Periodic scans: due per tenant, never twice at once, and replayed day by day after an import."""

import json
import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from anomalies import registry
from anomalies.detectors.base import Detector, Finding
from anomalies.models import Anomaly, Severity
from anomalies.scans import backtest_days, claim_due_tenant, run_due_scans
from tenants.models import Tenant
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, event

SCANS: list[tuple[str, datetime, bool]] = []


class DailyCounter(Detector):
    """Records each scan; fires when a day as of the scan had no charge at all."""

    name = "daily_counter"
    title = "Daily counter"
    description = "test scan"
    has_scan = True

    def scan(self, ctx, as_of):
        SCANS.append((ctx.tenant.slug, as_of, ctx.livemode))
        day_start = as_of - timedelta(days=1)
        if not ctx.events().filter(created__gte=day_start, created__lt=as_of).exists():
            yield Finding("quiet", Severity.LOW, f"quiet day before {as_of:%Y-%m-%d}", "", as_of,
                          as_of.isoformat())


@pytest.fixture(autouse=True)
def counter():
    registry.load_detectors()
    saved = dict(registry.DETECTORS)
    registry.DETECTORS.clear()
    registry.register(DailyCounter)
    SCANS.clear()
    yield
    registry.DETECTORS.clear()
    registry.DETECTORS.update(saved)


@pytest.mark.django_db
def test_backtest_days_are_local_midnights_then_the_end(make_tenant):
    tenant = make_tenant().tenant
    tenant.timezone = "Europe/Paris"
    start, end = datetime(2026, 3, 1, 10, tzinfo=UTC), datetime(2026, 3, 3, 15, tzinfo=UTC)
    points = backtest_days(tenant, start, end)
    assert [p.astimezone(UTC) for p in points] == [
        datetime(2026, 3, 1, 23, tzinfo=UTC), datetime(2026, 3, 2, 23, tzinfo=UTC), end
    ]


@pytest.mark.django_db
def test_import_backtests_each_day_and_finds_the_quiet_day(acme, tmp_path):
    days = [T0, T0 + timedelta(days=1), T0 + timedelta(days=3)]  # day 2 has nothing
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(event("charge.succeeded", d, customer="cus_A")) for d in days))
    call_command("import_events", "--tenant", acme.tenant.slug, str(path), "--json", stdout=open("/dev/null", "w"))
    scanned = [as_of for slug, as_of, live in SCANS if slug == acme.tenant.slug]
    assert scanned[-1] == T0 + timedelta(days=3)  # ends at the last imported event
    assert len(scanned) == 4
    with tenant_scope(acme.tenant):
        [quiet] = Anomaly.objects.filter(detector="daily_counter")
    assert quiet.title == "quiet day before 2026-03-05"


@pytest.mark.django_db
def test_scans_run_when_due_then_wait_for_the_interval(acme, globex, settings):
    settings.BILLINGWATCH_SCAN_INTERVAL_SECONDS = 300
    from tests.anomalies.events import store

    store(acme.tenant, event("charge.succeeded", T0, customer="cus_A"))
    now = timezone.now()
    assert run_due_scans(now) == 2  # both tenants were due
    assert run_due_scans(now + timedelta(seconds=10)) == 0
    assert run_due_scans(now + timedelta(seconds=301)) == 2
    # A tenant without events is claimed but has nothing to scan.
    assert {slug for slug, _, _ in SCANS} == {acme.tenant.slug}


@pytest.mark.django_db
def test_disabled_tenants_are_not_scanned(acme):
    Tenant.objects.filter(pk=acme.tenant.pk).update(is_active=False)
    assert claim_due_tenant(timezone.now()) is None


def _claim(queue, barrier, now):
    connections.close_all()
    barrier.wait()
    claimed = []
    while tenant := claim_due_tenant(now):
        claimed.append(tenant.pk)
    queue.put(claimed)


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_scan_the_same_tenant(make_tenant):
    for _ in range(30):
        make_tenant()
    connections.close_all()
    now = timezone.now()
    ctx = multiprocessing.get_context("fork")
    queue, barrier = ctx.Queue(), ctx.Barrier(3)
    processes = [ctx.Process(target=_claim, args=(queue, barrier, now)) for _ in range(3)]
    for p in processes:
        p.start()
    claimed = [pk for _ in processes for pk in queue.get(timeout=60)]
    for p in processes:
        p.join(timeout=10)
    assert sorted(claimed) == sorted(Tenant.objects.values_list("pk", flat=True))
