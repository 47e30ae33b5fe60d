"""What every worker does besides events: say it is alive, and run instance-wide jobs when due.

Heartbeats feed the operator's status page ("workers seen in the last minute").
Jobs run on whichever worker claims them first: the claim is a conditional
UPDATE of the job's next_run_at, so with many workers each job still runs once
per interval.
"""

import json
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.utils import timezone

from webhooks import quotas, retention
from webhooks.models import PeriodicJob, WorkerHeartbeat

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY = timedelta(seconds=10)
# Seen in the last minute: alive. The status page uses the same number.
ALIVE_WITHIN = timedelta(minutes=1)

JOBS: dict[str, tuple[timedelta, Callable[[], object]]] = {
    # A new month gives each tenant its quota back: queue what was held.
    "release_held_events": (timedelta(minutes=5), quotas.release_past_months),
    "prune": (timedelta(days=1), retention.prune),
}


def claim_job(name: str, every: timedelta, now: datetime) -> bool:
    """True for exactly one caller per interval."""
    PeriodicJob.objects.get_or_create(name=name, defaults={"next_run_at": now})
    return PeriodicJob.objects.filter(name=name, next_run_at__lte=now).update(next_run_at=now + every) == 1


def run_due_jobs(now: datetime | None = None) -> dict[str, object]:
    """Run each job this worker claims; a failing job is logged and tried again next interval."""
    now = now or timezone.now()
    results = {}
    for name, (every, job) in JOBS.items():
        if not claim_job(name, every, now):
            continue
        try:
            results[name] = job()
        except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the worker
            logger.exception("periodic job %s failed", name)
            results[name] = f"failed: {type(exc).__name__}: {exc}"
        PeriodicJob.objects.filter(name=name).update(
            last_run_at=now, last_result=json.dumps(results[name], default=str)[:2000]
        )
    return results


class Heartbeat:
    """One worker process's row, written at most every HEARTBEAT_EVERY."""

    def __init__(self):
        self.host = socket.gethostname()[:150]
        self.pid = os.getpid()
        self.identity = f"{self.host}:{self.pid}"
        self.started_at = timezone.now()
        self._next_beat: datetime | None = None

    def beat(self, events_processed: int, now: datetime | None = None, force: bool = False) -> bool:
        now = now or timezone.now()
        if not force and self._next_beat is not None and now < self._next_beat:
            return False
        try:
            WorkerHeartbeat.objects.update_or_create(
                identity=self.identity,
                defaults={"host": self.host, "pid": self.pid, "started_at": self.started_at,
                          "last_beat_at": now, "events_processed": events_processed},
            )
        except DatabaseError:
            logger.exception("heartbeat of worker %s failed", self.identity)
            return False
        self._next_beat = now + HEARTBEAT_EVERY
        return True

    def stop(self) -> None:
        """A worker that stops cleanly removes its row: only crashed workers linger (and show as stale)."""
        WorkerHeartbeat.objects.filter(identity=self.identity).delete()


def workers_seen(now: datetime | None = None) -> list[tuple[WorkerHeartbeat, bool]]:
    """Every known worker with whether it beat within ALIVE_WITHIN."""
    now = now or timezone.now()
    return [(w, now - w.last_beat_at <= ALIVE_WITHIN) for w in WorkerHeartbeat.objects.all()]
