"""Worker heartbeats and instance-wide periodic jobs."""

from datetime import UTC, datetime, timedelta

import pytest

from webhooks import housekeeping
from webhooks.models import PeriodicJob, WorkerHeartbeat

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_job_is_claimed_once_per_interval():
    every = timedelta(minutes=5)
    assert housekeeping.claim_job("demo", every, NOW) is True
    assert housekeeping.claim_job("demo", every, NOW) is False  # another worker, same moment
    assert housekeeping.claim_job("demo", every, NOW + timedelta(minutes=4)) is False
    assert housekeeping.claim_job("demo", every, NOW + timedelta(minutes=5)) is True
    assert PeriodicJob.objects.get(name="demo").next_run_at == NOW + timedelta(minutes=10)


def test_due_jobs_run_and_record_their_result(monkeypatch):
    calls = []
    monkeypatch.setattr(housekeeping, "JOBS", {
        "ok": (timedelta(hours=1), lambda: calls.append("ok") or {"deleted": 3}),
        "boom": (timedelta(hours=1), lambda: 1 / 0),
    })
    results = housekeeping.run_due_jobs(NOW)
    assert calls == ["ok"] and results["ok"] == {"deleted": 3}
    assert results["boom"] == "failed: ZeroDivisionError: division by zero"
    assert PeriodicJob.objects.get(name="ok").last_result == '{"deleted": 3}'
    assert housekeeping.run_due_jobs(NOW + timedelta(minutes=1)) == {}  # not due again yet
    assert calls == ["ok"]


def test_heartbeats_are_throttled_and_stale_workers_show_as_such():
    heart = housekeeping.Heartbeat()
    assert heart.beat(10, now=NOW) is True
    assert heart.beat(20, now=NOW + timedelta(seconds=5)) is False  # within HEARTBEAT_EVERY
    assert heart.beat(30, now=NOW + timedelta(seconds=11)) is True
    row = WorkerHeartbeat.objects.get(identity=heart.identity)
    assert (row.events_processed, row.last_beat_at) == (30, NOW + timedelta(seconds=11))
    [(seen, alive)] = housekeeping.workers_seen(now=NOW + timedelta(seconds=30))
    assert seen.identity == heart.identity and alive is True
    [(_, alive)] = housekeeping.workers_seen(now=NOW + timedelta(minutes=5))
    assert alive is False
    heart.stop()
    assert not WorkerHeartbeat.objects.exists()


def test_a_worker_beats_runs_the_due_jobs_and_removes_its_row_when_it_stops(acme, monkeypatch):
    from webhooks.worker import Worker

    seen = []
    real_beat = housekeeping.Heartbeat.beat

    def spying_beat(self, events_processed, now=None, force=False):
        written = real_beat(self, events_processed, now, force)
        seen.append(list(WorkerHeartbeat.objects.values_list("identity", flat=True)))
        return written

    monkeypatch.setattr(housekeeping.Heartbeat, "beat", spying_beat)
    worker = Worker(once=True)
    worker.run()
    assert seen and seen[0] == [worker.identity]  # it was listed while running
    assert set(PeriodicJob.objects.values_list("name", flat=True)) == {"prune", "release_held_events"}
    assert all(job.last_run_at for job in PeriodicJob.objects.all())
    assert not WorkerHeartbeat.objects.exists()  # a clean stop leaves no stale row
