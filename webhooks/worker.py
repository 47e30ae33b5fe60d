"""The worker loop: claim due events in batches, process them, repeat.

Claiming is one statement, so several workers on several machines never take
the same event: on PostgreSQL the candidate rows are locked with
FOR UPDATE SKIP LOCKED (workers skip each other's rows instead of waiting);
on SQLite the whole database has one writer at a time, so the conditional
UPDATE is atomic by itself. A claim moves `available_at` to the end of the
lease, so the batch of a worker that dies is claimed again after the lease.
"""

import logging
import signal
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from alerts import digests, dispatch, notices
from anomalies.scans import run_due_scans
from webhooks import housekeeping
from webhooks.models import StripeEvent
from webhooks.processing import ClaimedEvent, process_claimed

# How often a busy worker looks for tenants whose periodic scans are due.
SCAN_CHECK_SECONDS = 5.0
# How often it looks for alert digests that are due.
DIGEST_CHECK_SECONDS = 60.0

logger = logging.getLogger(__name__)


def _claim_sql(restrict_to_ids: bool) -> str:
    table = connection.ops.quote_name(StripeEvent._meta.db_table)
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    only_ids = " AND id IN ({ids})" if restrict_to_ids else ""
    return (
        f"UPDATE {table} SET status = %s, available_at = %s, attempts = attempts + 1 "
        f"WHERE id IN (SELECT id FROM {table} WHERE available_at IS NOT NULL AND available_at <= %s{only_ids} "
        f"ORDER BY available_at LIMIT %s{lock}) "
        "RETURNING id, tenant_id, type, attempts"
    )


def claim_batch(limit: int, lease: timedelta, only_ids: list[int] | None = None) -> list[ClaimedEvent]:
    """Claim up to `limit` due events across all tenants (the worker's unscoped door)."""
    now = timezone.now()
    field = StripeEvent._meta.get_field("available_at")
    sql = _claim_sql(only_ids is not None)
    params = [StripeEvent.Status.PROCESSING, field.get_db_prep_save(now + lease, connection)]
    params.append(field.get_db_prep_save(now, connection))
    if only_ids is not None:
        if not only_ids:
            return []
        sql = sql.format(ids=", ".join(["%s"] * len(only_ids)))
        params.extend(only_ids)
    params.append(limit)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [ClaimedEvent(*row) for row in cursor.fetchall()]


def run_batch(only_ids: list[int] | None = None) -> int:
    """Claim and process one batch; returns how many events it claimed."""
    claimed = claim_batch(
        settings.BILLINGWATCH_WORKER_BATCH_SIZE,
        timedelta(seconds=settings.BILLINGWATCH_WORKER_LEASE_SECONDS),
        only_ids=only_ids,
    )
    if claimed:
        with notices.batch_cache():  # each tenant's alert channels read once per batch
            processed, failed = process_claimed(claimed)
        logger.info("processed %d events, %d failed", processed, failed)
    return len(claimed)


def drain(only_ids: list[int] | None = None) -> int:
    """Process until nothing is due; returns the number of events claimed."""
    total = 0
    while claimed := run_batch(only_ids):
        total += claimed
    return total


class Worker:
    """A long-running worker; SIGTERM/SIGINT finish the current batch, then stop."""

    def __init__(self, once: bool = False):
        self.once = once
        self.stopping = threading.Event()
        self.heartbeat = housekeeping.Heartbeat()
        self.identity = self.heartbeat.identity

    def request_stop(self, *_):
        logger.info("worker %s stopping after the current batch", self.identity)
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        logger.info("worker %s started", self.identity)
        total = 0
        next_scan_check = next_digest_check = 0.0
        while not self.stopping.is_set():
            claimed = run_batch()
            total += claimed
            self.heartbeat.beat(total)  # at most every few seconds
            if time.monotonic() >= next_scan_check:
                run_due_scans()
                housekeeping.run_due_jobs()  # prune daily, release held events in a new month
                next_scan_check = time.monotonic() + SCAN_CHECK_SECONDS
            if time.monotonic() >= next_digest_check:
                digests.queue_due_digests()
                next_digest_check = time.monotonic() + DIGEST_CHECK_SECONDS
            sent = dispatch.send_due()
            if claimed or sent:
                continue
            if self.once:
                break
            self.stopping.wait(settings.BILLINGWATCH_WORKER_POLL_SECONDS)
        self.heartbeat.stop()
        logger.info("worker %s stopped after %d events", self.identity, total)
        return total
