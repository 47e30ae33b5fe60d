"""The worker: claims, leases, retries, and never processes an event twice."""

import multiprocessing
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from anomalies import registry
from tenants.scope import tenant_scope
from tests.conftest import load_fixture_event
from webhooks import worker
from webhooks.models import StripeEvent
from webhooks.payloads import read_event
from webhooks.processing import retry_delay
from webhooks.store import store_event


def store(tenant, n, type_="charge.succeeded.json", prefix="evt_w"):
    with tenant_scope(tenant):
        for i in range(n):
            event = load_fixture_event(type_, id=f"{prefix}_{tenant.slug}_{i}")
            import json

            store_event(tenant=tenant, endpoint=None, facts=read_event(event), payload_json=json.dumps(event),
                        source="import")


def statuses(tenant):
    with tenant_scope(tenant):
        return sorted(StripeEvent.objects.values_list("status", flat=True))


@pytest.fixture
def recording_detector():
    """A detector that records what it saw (and can be told to fail)."""
    from anomalies.detectors.base import Detector

    seen = []

    class Recorder(Detector):
        name = "recorder"
        event_types = frozenset({"charge.succeeded", "charge.failed"})
        fail_on = set()

        def evaluate(self, ctx, event):
            seen.append(event.stripe_id)
            if event.stripe_id in Recorder.fail_on:
                raise ValueError("boom")
            return ()

    registry.load_detectors()
    registry.register(Recorder)
    yield Recorder, seen
    registry.DETECTORS.pop("recorder")


@pytest.fixture
def failing_processing(monkeypatch):
    """Processing itself (not a detector) fails for the listed events, e.g. the database hiccups."""
    from anomalies import engine

    fail_on = set()
    original = engine.evaluate_event

    def evaluate(event, settings=None):
        if event.stripe_id in fail_on:
            raise ValueError("boom")
        return original(event, settings)

    monkeypatch.setattr(engine, "evaluate_event", evaluate)
    return fail_on


@pytest.mark.django_db
def test_once_drains_all_tenants_and_marks_processed(acme, globex):
    store(acme.tenant, 3)
    store(globex.tenant, 2)
    assert worker.Worker(once=True).run() == 5
    assert statuses(acme.tenant) == ["processed"] * 3
    assert statuses(globex.tenant) == ["processed"] * 2
    with tenant_scope(acme.tenant):
        assert all(e.processed_at and e.available_at is None and e.attempts == 1 for e in StripeEvent.objects.all())


@pytest.mark.django_db
def test_detectors_run_in_the_events_tenant_scope(acme, recording_detector):
    Recorder, seen = recording_detector
    from tenants.scope import current_tenant

    scopes = []
    Recorder.evaluate = lambda self, ctx, event: scopes.append((current_tenant().pk, event.tenant_id))
    store(acme.tenant, 2)
    worker.drain()
    assert scopes == [(acme.tenant.pk, acme.tenant.pk)] * 2


@pytest.mark.django_db
def test_a_raising_detector_is_recorded_and_the_event_still_processed(acme, recording_detector):
    Recorder, seen = recording_detector
    store(acme.tenant, 2)
    Recorder.fail_on = {f"evt_w_{acme.tenant.slug}_1"}
    worker.drain()
    assert sorted(seen) == [f"evt_w_{acme.tenant.slug}_0", f"evt_w_{acme.tenant.slug}_1"]
    with tenant_scope(acme.tenant):
        events = {e.stripe_id: e for e in StripeEvent.objects.all()}
    assert {e.status for e in events.values()} == {"processed"}
    assert events[f"evt_w_{acme.tenant.slug}_1"].detector_errors == [
        {"detector": "recorder", "error": "ValueError: boom"}
    ]
    assert events[f"evt_w_{acme.tenant.slug}_0"].detector_errors == []


@pytest.mark.django_db
def test_failure_is_recorded_and_retried_with_backoff_without_blocking_others(
    acme, recording_detector, failing_processing
):
    store(acme.tenant, 3)
    failing_processing.add(f"evt_w_{acme.tenant.slug}_1")
    worker.drain()
    with tenant_scope(acme.tenant):
        failed = StripeEvent.objects.get(status="failed")
        assert failed.stripe_id == f"evt_w_{acme.tenant.slug}_1"
        assert "ValueError: boom" in failed.last_error
        assert failed.attempts == 1
        assert failed.available_at > timezone.now() + timedelta(seconds=25)  # retried later, not now
        assert StripeEvent.objects.filter(status="processed").count() == 2
        # When the retry is due and the detector is fixed, it is processed.
        StripeEvent.objects.filter(pk=failed.pk).update(available_at=timezone.now())
    failing_processing.clear()
    worker.drain()
    with tenant_scope(acme.tenant):
        failed.refresh_from_db()
    assert failed.status == "processed" and failed.attempts == 2 and failed.last_error == ""


@pytest.mark.django_db
def test_final_failure_after_max_attempts_leaves_the_queue(acme, recording_detector, failing_processing, settings):
    settings.BILLINGWATCH_MAX_ATTEMPTS = 2
    store(acme.tenant, 1)
    failing_processing.add(f"evt_w_{acme.tenant.slug}_0")
    for _ in range(2):
        with tenant_scope(acme.tenant):
            StripeEvent.objects.update(available_at=timezone.now())
        worker.drain()
    with tenant_scope(acme.tenant):
        event = StripeEvent.objects.get()
    assert event.status == "failed" and event.attempts == 2 and event.available_at is None
    assert worker.drain() == 0


def test_backoff_is_bounded_exponential():
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(50) == timedelta(hours=6)


@pytest.mark.django_db
def test_expired_lease_is_claimed_again(acme):
    store(acme.tenant, 2)
    claimed = worker.claim_batch(10, timedelta(minutes=5))
    assert len(claimed) == 2
    assert worker.claim_batch(10, timedelta(minutes=5)) == []  # leased: nobody else gets them
    with tenant_scope(acme.tenant):
        assert all(e.lease_until is not None for e in StripeEvent.objects.all())
        # The worker holding them died; its lease runs out.
        StripeEvent.objects.update(available_at=timezone.now() - timedelta(seconds=1))
    again = worker.claim_batch(10, timedelta(minutes=5))
    assert sorted(c.id for c in again) == sorted(c.id for c in claimed)
    assert {c.attempts for c in again} == {2}


@pytest.mark.django_db
def test_stale_claim_does_not_overwrite_the_new_owner(acme):
    from webhooks.processing import process_claimed

    store(acme.tenant, 1)
    [first] = worker.claim_batch(10, timedelta(seconds=0))
    [second] = worker.claim_batch(10, timedelta(minutes=5))  # lease 0 s: re-claimed at once
    process_claimed([first])  # the first worker finishes late
    with tenant_scope(acme.tenant):
        assert StripeEvent.objects.get().status == "processing"  # still the second claim's
    process_claimed([second])
    with tenant_scope(acme.tenant):
        assert StripeEvent.objects.get().status == "processed"


def _claim_all(queue, barrier):
    connections.close_all()
    barrier.wait()  # all start claiming at the same moment
    ids = []
    while batch := worker.claim_batch(3, timedelta(minutes=5)):
        ids.extend(c.id for c in batch)
        time.sleep(0.002)  # "processing": SQLite's busy handler is not fair to a tight loop
    queue.put(ids)


@pytest.mark.django_db(transaction=True)
def test_parallel_workers_never_claim_the_same_event(make_tenant):
    tenants = [make_tenant().tenant for _ in range(3)]
    for tenant in tenants:
        store(tenant, 100)
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    barrier = ctx.Barrier(4)
    processes = [ctx.Process(target=_claim_all, args=(queue, barrier)) for _ in range(4)]
    for p in processes:
        p.start()
    results = [queue.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(timeout=10)
    claimed = [i for ids in results for i in ids]
    assert len(claimed) == 300
    assert len(set(claimed)) == 300
    assert sum(1 for ids in results if ids) >= 2  # they really ran side by side


@pytest.mark.django_db
def test_sigterm_finishes_the_batch_then_stops(acme):
    import os
    import signal

    store(acme.tenant, 3)
    w = worker.Worker()
    original = worker.run_batch

    def batch_then_signal(*args, **kwargs):
        n = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return n

    worker.run_batch = batch_then_signal
    try:
        assert w.run() == 3
    finally:
        worker.run_batch = original
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert statuses(acme.tenant) == ["processed"] * 3
