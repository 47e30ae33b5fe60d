#!/usr/bin/env python
"""Worker benchmark: stored events processed per second, empty detector registry.

1. creates a throwaway database: PostgreSQL (bench_worker_<pid> on the server
   of --database-url) or, for a sqlite:// URL, a temporary file;
2. migrates it, creates --tenants tenants and bulk-inserts --events pending
   charge.succeeded events (a realistic ~2.4 KB payload each, spread over the
   tenants) through the tenant-scoped manager (bulk_create in tenant_scope);
3. drains the queue with one worker, in this process (webhooks.worker.drain(),
   what `manage.py worker --once` runs), and times it; with --processes N it
   runs N `manage.py worker --once` processes at once instead;
4. checks every event is 'processed' exactly once (attempts = 1, no
   available_at, a processed_at) and that claims were batched;
5. drops the database (or deletes the file).

    .venv/bin/python bench/worker.py --markdown
    .venv/bin/python bench/worker.py --database-url sqlite:////tmp/bench_worker.sqlite3 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from machine import CLK_TCK, cpu_calibration, cpu_ticks, log, machine_ticks, postgres_pids, wait_for_idle, with_dbname  # noqa: E402  (bench/machine.py)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURE = ROOT.parent / "shared" / "stripe-fixtures" / "stripe-ruby-mock-events" / "charge.succeeded.json"
TARGET_PER_SECOND = 3000


# --- database lifecycle -------------------------------------------------------------


class ThrowawayDatabase:
    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        self.vendor = "sqlite" if parts.scheme.startswith("sqlite") else "postgresql"
        if self.vendor == "postgresql":
            if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
                raise SystemExit("--database-url must name a PostgreSQL server on loopback")
            self.name = f"bench_worker_{os.getpid()}"
            self.admin_url = with_dbname(base_url, "postgres")
            self.url = with_dbname(base_url, self.name)
        else:
            path = Path(parts.path) if parts.path not in ("", "/") else Path(f"/tmp/bench_worker_{os.getpid()}.sqlite3")
            if path.exists():
                raise SystemExit(f"{path} exists; give a new file name (it is deleted afterwards)")
            self.path = path
            self.name = str(path)
            self.url = f"sqlite:///{path}"

    def create(self) -> None:
        if self.vendor == "postgresql":
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        if self.vendor == "postgresql":
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        else:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)


def setup_django(database_url: str, batch_size: int) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["BILLINGWATCH_WORKER_BATCH_SIZE"] = str(batch_size)
    os.environ.setdefault("SECRET_KEY", "bench-worker-not-secret-" + "x" * 30)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.pop("CACHE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billingwatch.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def empty_registry() -> None:
    """The benchmark measures the queue itself: no detector runs (and no payload is loaded)."""
    import anomalies.registry as registry

    load = getattr(registry, "load_detectors", None)
    if load is not None:
        load()  # import every detector module now, so nothing registers later
    registry.DETECTORS.clear()
    if registry.subscribed_event_types():
        raise RuntimeError("could not empty the detector registry")


CHILD_WORKER = """
import os, sys
sys.path.insert(0, os.getcwd())
import django
django.setup()
if os.environ.get("BENCH_EMPTY_REGISTRY") == "1":
    sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
    from worker import empty_registry
    empty_registry()
from webhooks.worker import Worker
print(f"processed {Worker(once=True).run()} events")
"""


# --- filling the queue ---------------------------------------------------------------------


def fill_queue(events: int, tenant_count: int, fixture: dict) -> list:
    """Create the tenants and `events` pending events, spread round-robin over them."""
    from django.core.management import call_command
    from django.db import transaction

    from tenants.onboarding import create_tenant
    from tenants.scope import tenant_scope
    from webhooks.models import StripeEvent
    from webhooks.payloads import read_event

    call_command("migrate", verbosity=0)
    with transaction.atomic():
        created = [
            create_tenant(f"Worker bench {n}", slug=f"worker-bench-{n}", webhook_secret=f"whsec_workerbench{n:06d}")
            for n in range(tenant_count)
        ]
    now = datetime.now(UTC)
    due = now - timedelta(seconds=1)
    facts = read_event(fixture)
    per_tenant = [events // tenant_count + (1 if t < events % tenant_count else 0) for t in range(tenant_count)]
    made = 0
    for t, (new, count) in enumerate(zip(created, per_tenant)):
        with tenant_scope(new.tenant), transaction.atomic():
            batch = []
            for k in range(count):
                payload = dict(fixture)
                payload["id"] = f"evt_bench{t:04d}x{k:08d}"
                batch.append(
                    StripeEvent(
                        tenant=new.tenant,
                        endpoint=new.endpoint,
                        stripe_id=payload["id"],
                        type=facts.type,
                        api_version=facts.api_version,
                        livemode=facts.livemode,
                        created=facts.created,
                        received_at=now,
                        source=StripeEvent.Source.WEBHOOK,
                        object_type=facts.object_type,
                        object_id=facts.object_id,
                        customer_id=facts.customer_id,
                        amount=facts.amount,
                        currency=facts.currency,
                        payload=payload,
                        status=StripeEvent.Status.PENDING,
                        attempts=0,
                        available_at=due,
                    )
                )
            StripeEvent.objects.bulk_create(batch, batch_size=500)
            made += count
    return created


# --- draining ----------------------------------------------------------------------------


def drain_in_process(vendor: str) -> dict:
    """Time webhooks.worker.drain(), with claim and processing time measured apart."""
    from django.db import connection

    import webhooks.worker as worker

    timings = {"claims": 0, "empty_claims": 0, "claim_s": 0.0, "process_s": 0.0, "sizes": []}
    real_claim, real_process = worker.claim_batch, worker.process_claimed

    def timed_claim(*args, **kwargs):
        start = time.perf_counter()
        claimed = real_claim(*args, **kwargs)
        timings["claim_s"] += time.perf_counter() - start
        timings["claims"] += 1
        timings["sizes"].append(len(claimed))
        if not claimed:
            timings["empty_claims"] += 1
        return claimed

    def timed_process(claimed):
        start = time.perf_counter()
        result = real_process(claimed)
        timings["process_s"] += time.perf_counter() - start
        return result

    connection.ensure_connection()
    backend_pid = None
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend_pid = cursor.fetchone()[0]
    worker.claim_batch, worker.process_claimed = timed_claim, timed_process
    try:
        backend_before = cpu_ticks(backend_pid) if backend_pid else 0
        cpu_before = time.process_time()
        start = time.perf_counter()
        total = worker.drain()
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_before
        backend_cpu = (cpu_ticks(backend_pid) - backend_before) / CLK_TCK if backend_pid else None
    finally:
        worker.claim_batch, worker.process_claimed = real_claim, real_process
    sizes = timings.pop("sizes")
    return {
        "claimed": total,
        "wall_s": wall,
        "worker_cpu_s": cpu,
        "postgres_backend_cpu_s": backend_cpu,
        "largest_claim": max(sizes) if sizes else 0,
        **timings,
    }


def drain_with_processes(db_url: str, batch_size: int, processes: int, timeout: float, empty: bool) -> dict:
    """Run `processes` workers (what `manage.py worker --once` runs) at once; wall time until the last exits."""
    env = dict(os.environ)
    env.update({"DATABASE_URL": db_url, "BILLINGWATCH_WORKER_BATCH_SIZE": str(batch_size), "LOG_LEVEL": "WARNING",
                "DJANGO_SETTINGS_MODULE": "billingwatch.settings", "BENCH_EMPTY_REGISTRY": "1" if empty else "0"})
    env.pop("CACHE_URL", None)
    pg_before = {pid: cpu_ticks(pid) for pid in postgres_pids()}
    # The workers' PostgreSQL backends exit with them: sample their CPU while they live.
    pg_last: dict[int, int] = dict(pg_before)
    stop = threading.Event()

    def sample_postgres():
        while not stop.wait(0.2):
            for pid in postgres_pids():
                pg_last[pid] = max(pg_last.get(pid, 0), cpu_ticks(pid))

    sampler = threading.Thread(target=sample_postgres, daemon=True)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD_WORKER], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(processes)
    ]
    sampler.start()
    outputs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed ({proc.returncode}): {err[-2000:]}")
        outputs.append(out)
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    for pid in postgres_pids():
        pg_last[pid] = max(pg_last.get(pid, 0), cpu_ticks(pid))
    pg_cpu = sum(ticks - pg_before.get(pid, 0) for pid, ticks in pg_last.items()) / CLK_TCK
    counts = [int(out.split("processed")[1].split()[0]) for out in outputs]
    # The worker processes' own CPU: their rusage, collected by the OS when they were reaped.
    import resource

    return {"claimed": sum(counts), "per_process": counts, "wall_s": wall, "postgres_cpu_s": pg_cpu,
            "children_cpu_s": sum(getattr(resource.getrusage(resource.RUSAGE_CHILDREN), f) for f in ("ru_utime", "ru_stime"))}


def check_processed() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, attempts, available_at IS NULL, processed_at IS NOT NULL, count(*) "
            "FROM webhooks_stripeevent GROUP BY 1, 2, 3, 4"
        )
        groups = cursor.fetchall()
    total = sum(row[4] for row in groups)
    good = sum(row[4] for row in groups if row[0] == "processed" and row[1] == 1 and row[2] and row[3])
    return {"rows": total, "processed_once": good, "groups": [list(map(str, row)) for row in groups], "ok": good == total}


# --- main -----------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="pending events to process (default 100000)")
    parser.add_argument("--tenants", type=int, default=100, help="tenants the events are spread over (default 100)")
    parser.add_argument("--batch-size", type=int, default=500, help="BILLINGWATCH_WORKER_BATCH_SIZE (default 500)")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server (a throwaway database is created on it) or sqlite:////tmp/file.sqlite3",
    )
    parser.add_argument("--processes", type=int, default=0,
                        help="run this many `manage.py worker --once` processes at once instead of drain() in-process")
    parser.add_argument("--with-detectors", action="store_true",
                        help="keep the detector registry as it is (default: empty it, as the target says)")
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE)
    parser.add_argument("--timeout", type=float, default=900.0, help="time limit of the drain (seconds)")
    parser.add_argument("--wait-idle", type=float, default=120.0, help="first wait up to this long for an idle machine")
    parser.add_argument("--markdown", action="store_true", help="print the results as a Markdown table")
    parser.add_argument("--keep-database", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    fixture = json.loads(args.fixture.read_text())
    db = ThrowawayDatabase(args.database_url)
    log(f"creating {db.vendor} database {db.name}")
    db.create()
    try:
        setup_django(db.url, args.batch_size)
        if not args.with_detectors:
            empty_registry()
        start = time.perf_counter()
        fill_queue(args.events, args.tenants, fixture)
        log(f"inserted {args.events:,} pending events for {args.tenants} tenants in {time.perf_counter() - start:.1f} s")
        from django.db import connection, connections

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE webhooks_stripeevent")  # what autovacuum does soon after a bulk insert
        connections.close_all()
        busy = wait_for_idle(args.wait_idle)
        calibration = cpu_calibration()
        log(f"machine {busy * 100:.0f} % busy before the run; 5M-iteration Python loop: {calibration:.2f} s CPU")
        machine_before = machine_ticks()
        if args.processes:
            result = drain_with_processes(db.url, args.batch_size, args.processes, args.timeout, not args.with_detectors)
            mode = f"{args.processes} worker processes (Worker(once=True), as `manage.py worker --once`) in parallel"
        else:
            result = drain_in_process(db.vendor)
            mode = "one worker: webhooks.worker.drain() in-process"
        machine_after = machine_ticks()
        busy_s = (machine_after[0] - machine_before[0]) / CLK_TCK
        total_s = (machine_after[1] - machine_before[1]) / CLK_TCK
        result["machine_busy_share"] = busy_s / max(total_s, 1e-9)
        ours = (result.get("worker_cpu_s") or 0) + (result.get("postgres_backend_cpu_s") or 0) + \
            (result.get("children_cpu_s") or 0) + (result.get("postgres_cpu_s") or 0)
        result["other_cpu_share"] = max(0.0, busy_s - ours) / max(total_s, 1e-9)
        check = check_processed()
        connections.close_all()
    finally:
        if not args.keep_database:
            try:
                from django.db import connections

                connections.close_all()
            except Exception:
                pass
            db.drop()
            log(f"dropped {db.name}")

    per_second = result["claimed"] / result["wall_s"] if result["wall_s"] else 0.0
    per_worker = per_second / (args.processes or 1)
    met = per_worker >= TARGET_PER_SECOND and check["ok"] and result["claimed"] == args.events
    backend = "PostgreSQL 15" if db.vendor == "postgresql" else "SQLite (WAL, synchronous=FULL)"
    config = (
        f"{backend}; {mode}; {args.events:,} events over {args.tenants} tenants; batch size {args.batch_size}; "
        f"{'detectors as registered' if args.with_detectors else 'empty detector registry'}; "
        f"CPU speed check: a 5M-iteration Python loop took {calibration:.2f} s"
    )
    if args.processes:
        claims = "-"
        cpu_cells = f"{result['children_cpu_s']:.1f} s workers, {result['postgres_cpu_s']:.1f} s PostgreSQL"
    else:
        claims = f"{result['claims']} ({result['empty_claims']} empty, largest {result['largest_claim']})"
        cpu_cells = f"{result['worker_cpu_s']:.1f} s worker" + (
            f", {result['postgres_backend_cpu_s']:.1f} s PostgreSQL backend" if result["postgres_backend_cpu_s"] is not None else ""
        )
    if args.markdown:
        print(f"\n{config}\n")
        print("| database | events | wall s | events/s | events/s per worker | claims | claim s / process s | CPU | all processed once | target ≥ 3,000/s per worker |")
        print("|---|---:|---:|---:|---:|---|---:|---|:---:|:---:|")
        split = "-" if args.processes else f"{result['claim_s']:.1f} / {result['process_s']:.1f}"
        print(
            f"| {backend} | {result['claimed']:,} | {result['wall_s']:.1f} | {per_second:,.0f} | {per_worker:,.0f} | {claims} "
            f"| {split} | {cpu_cells} | {'yes' if check['ok'] else '**no**'} ({check['processed_once']:,}/{check['rows']:,}) "
            f"| {'yes' if per_worker >= TARGET_PER_SECOND else '**no**'} |"
        )
    else:
        print(config)
        print(f"  {result['claimed']:,} events in {result['wall_s']:.2f} s: {per_second:,.0f} events/s ({per_worker:,.0f} per worker)")
        print(f"  {'OK  ' if per_worker >= TARGET_PER_SECOND else 'MISS'} target ≥ {TARGET_PER_SECOND:,}/s per worker")
        print(f"  {'OK  ' if check['ok'] else 'MISS'} every event processed exactly once: {check}")
    if result["other_cpu_share"] > 0.10:
        print(f"\nWARNING: other processes used about {result['other_cpu_share'] * 100:.0f} % of the machine "
              "during the drain: these numbers are not clean.")
    print(f"details: {json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()})}",
          file=sys.stderr)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
