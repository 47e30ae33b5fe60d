#!/usr/bin/env python
"""Processing benchmark: events processed per second per worker, all detectors, 10k vs 1M rows of history.

For each --history size (default 10,000 then 1,000,000 rows, over --tenants 100 tenants):

1. creates a throwaway PostgreSQL database (bench_processing_<pid>), migrates it and creates
   the tenants;
2. history: one simulated Stripe account (anomalies.simulation, --customers customers,
   --days days, with every file-injectable anomaly somewhere in it) is stored for tenant 1
   through webhooks.store.store_event (source "webhook", received_at = created + a small
   delivery lag, 1 % of deliveries 6-30 min late), marked processed with one UPDATE, then
   copied to the other tenants with one INSERT ... SELECT per tenant; VACUUM ANALYZE; the
   table's size is reported. Each tenant holds the last history/tenants events before the
   workload, so both sizes see the same workload with the same immediate past;
3. workload: the simulated events that follow the history (the last --workload-events /
   --workload-tenants events of the same stream) are stored pending for --workload-tenants
   tenants (every 10th), then one webhooks.worker.drain() runs in this process (one worker,
   every detector registered and enabled) and is timed, claim and processing apart, with the
   worker's and its PostgreSQL backend's CPU and each detector's own time (the detector
   generators, including their queries; the anomaly upserts are the engine's);
4. scan pass: every tenant's next_scan_at is cleared and one anomalies.scans.run_due_scans()
   over all tenants is timed (what the worker does every BILLINGWATCH_SCAN_INTERVAL_SECONDS
   per tenant), as of just after the last workload delivery;
5. queries: a sample of events per detector of one workload tenant (workload events first,
   then the injected anomalies' events, then older history) is set pending again and drained
   with every SQL statement captured (connection.execute_wrapper) and attributed to the
   detector whose generator was running, plus one run_scans() of a workload tenant and of an
   idle tenant; on the largest history, every distinct statement shape is EXPLAINed
   (EXPLAIN (ANALYZE, BUFFERS) for SELECTs, with the parameters of its slowest capture; plain
   EXPLAIN for writes) and any Seq Scan on webhooks_stripeevent is flagged. The full plans go
   to --explain-file (default docs/explain-detectors.txt);
6. drops the database.

    .venv/bin/python bench/processing.py --markdown
    .venv/bin/python bench/processing.py --history 10000 --markdown --no-explain
    .venv/bin/python bench/processing.py --history 1000000 --json /tmp/processing.json

Before every timed measurement it waits (up to --wait-idle seconds) until the machine is at
most 15 % busy over 1 s, as bench/worker.py does; a drain (or scan pass) during which other
processes used more than --max-other-cpu of the machine is repeated up to --retries times (the
workload is put back to pending and the anomalies emptied first), and the least disturbed attempt
is reported. Exit code 0 when both targets are met (>= 500 events/s per worker at every size; the
largest history's rate within 1.5x of the smallest's), 1 when one is missed, 3 when every attempt
at some size was disturbed (the numbers are then not clean).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import batched
from pathlib import Path
from urllib.parse import urlsplit
from machine import CLK_TCK, cpu_calibration, cpu_ticks, log, machine_ticks, wait_for_idle, with_dbname  # noqa: E402  (bench/machine.py)

ROOT = Path(__file__).resolve().parent.parent
TARGET_PER_SECOND = 500
TARGET_RATIO = 1.5
EVENT_TABLE = "webhooks_stripeevent"
DEFAULT_END = "2025-06-02T00:00:00+00:00"


# --- machine state (helpers in bench/machine.py) ---------------------------------------------


class MachineWindow:
    """CPU of the whole machine, of this process and of its PostgreSQL backend over a block."""

    def __init__(self, backend_pid: int | None):
        self.backend_pid = backend_pid

    def __enter__(self):
        self.machine0 = machine_ticks()
        self.backend0 = cpu_ticks(self.backend_pid) if self.backend_pid else 0
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall_s = time.perf_counter() - self.wall0
        self.worker_cpu_s = time.process_time() - self.cpu0
        self.backend_cpu_s = (cpu_ticks(self.backend_pid) - self.backend0) / CLK_TCK if self.backend_pid else None
        machine1 = machine_ticks()
        busy_s = (machine1[0] - self.machine0[0]) / CLK_TCK
        total_s = max((machine1[1] - self.machine0[1]) / CLK_TCK, 1e-9)
        ours = self.worker_cpu_s + (self.backend_cpu_s or 0)
        self.machine_busy_share = busy_s / total_s
        self.other_cpu_share = max(0.0, busy_s - ours) / total_s

    def as_dict(self) -> dict:
        return {
            "wall_s": self.wall_s,
            "worker_cpu_s": self.worker_cpu_s,
            "postgres_backend_cpu_s": self.backend_cpu_s,
            "machine_busy_share": self.machine_busy_share,
            "other_cpu_share": self.other_cpu_share,
        }


# --- database lifecycle -------------------------------------------------------------------------


class ThrowawayDatabase:
    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        if not parts.scheme.startswith("postgres"):
            raise SystemExit("--database-url must be a postgres:// URL (this benchmark is about PostgreSQL)")
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("--database-url must name a PostgreSQL server on loopback")
        self.name = f"bench_processing_{os.getpid()}"
        self.admin_url = with_dbname(base_url, "postgres")
        self.url = with_dbname(base_url, self.name)

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def create(self) -> None:
        self._admin(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        from django.db import connections

        connections.close_all()
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "bench-processing-not-secret-" + "x" * 30)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.pop("CACHE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billingwatch.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def sql_rows(sql: str, params=()) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def sql_exec(sql: str, params=()) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# --- the simulated account ---------------------------------------------------------------------


def simulated_stream(seed: int, days: int, customers: int, end: datetime, cache_dir: Path | None) -> tuple[list, list]:
    """simulate(seed, days, end, customers, inject=every injectable anomaly), cached on disk (it is slow)."""
    from anomalies.simulation import INJECTABLE, simulate

    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"bench_processing_sim_{seed}_{days}d_{customers}c_{end:%Y%m%dT%H%M%S}.json"
        if cache.exists():
            data = json.loads(cache.read_text())
            log(f"simulated stream read from {cache}: {len(data['events']):,} events")
            return data["events"], data["labels"]
    start = time.perf_counter()
    events, labels = simulate(seed, days, end, customers=customers, inject=INJECTABLE)
    log(f"simulated {len(events):,} events ({customers} customers, {days} days) in {time.perf_counter() - start:.0f} s")
    if cache is not None:
        cache.write_text(json.dumps({"events": events, "labels": labels}, separators=(",", ":")))
    return events, labels


def delivery_lags(events: list, seed: int) -> list[float]:
    """Seconds between `created` and receipt: mostly 1-8 s, 2 % 10-120 s, 1 % 6-30 min (Stripe retrying)."""
    rng = random.Random(f"{seed}:lag")
    lags = []
    for _ in events:
        roll = rng.random()
        if roll < 0.01:
            lags.append(rng.uniform(360, 1800))
        elif roll < 0.03:
            lags.append(rng.uniform(10, 120))
        else:
            lags.append(rng.uniform(1, 8))
    return lags


# --- filling the database ----------------------------------------------------------------------


def create_tenants(count: int) -> list:
    from django.core.management import call_command
    from django.db import transaction

    from tenants.onboarding import create_tenant

    call_command("migrate", verbosity=0)
    with transaction.atomic():
        return [
            create_tenant(f"Processing bench {n}", slug=f"processing-bench-{n}",
                          webhook_secret=f"whsec_processingbench{n:06d}")
            for n in range(count)
        ]


def store_events(new_tenant, items: list[tuple[dict, datetime]]) -> list[int]:
    """store_event() each (payload, received_at) for the tenant, pending, source webhook; returns the ids."""
    from django.db import transaction

    from tenants.scope import tenant_scope
    from webhooks.payloads import read_event
    from webhooks.store import store_event

    ids = []
    with tenant_scope(new_tenant.tenant):
        for chunk in batched(items, 500):
            with transaction.atomic():
                for payload, received_at in chunk:
                    new_id = store_event(
                        tenant=new_tenant.tenant, endpoint=new_tenant.endpoint, facts=read_event(payload),
                        payload_json=json.dumps(payload, separators=(",", ":")), source="webhook",
                        received_at=received_at,
                    )
                    if new_id is None:
                        raise RuntimeError(f"duplicate event {payload['id']} for {new_tenant.tenant.slug}")
                    ids.append(new_id)
    return ids


def replicate_history(source, targets: list) -> None:
    """Copy the source tenant's rows to every target tenant: one INSERT ... SELECT per tenant."""
    from webhooks.models import StripeEvent

    columns = [f.column for f in StripeEvent._meta.concrete_fields if f.column not in ("id", "tenant_id", "endpoint_id")]
    listed = ", ".join(columns)
    sql = (
        f"INSERT INTO {EVENT_TABLE} (tenant_id, endpoint_id, {listed}) "
        f"SELECT %s, %s, {listed} FROM {EVENT_TABLE} WHERE tenant_id = %s ORDER BY id"
    )
    start = time.perf_counter()
    for n, target in enumerate(targets, start=1):
        sql_exec(sql, [target.tenant.pk, target.endpoint.pk, source.tenant.pk])
        if n % 10 == 0 or n == len(targets):
            log(f"  copied the history to {n}/{len(targets)} tenants ({time.perf_counter() - start:.0f} s)")


def table_size() -> dict:
    (total, heap, indexes, toast, rows), = sql_rows(
        f"SELECT pg_total_relation_size(%s), pg_relation_size(%s), pg_indexes_size(%s), "
        f"COALESCE(pg_total_relation_size(reltoastrelid), 0), (SELECT count(*) FROM {EVENT_TABLE}) "
        "FROM pg_class WHERE oid = %s::regclass",
        [EVENT_TABLE, EVENT_TABLE, EVENT_TABLE, EVENT_TABLE],
    )
    return {"rows": rows, "total_bytes": total, "heap_bytes": heap, "index_bytes": indexes, "toast_bytes": toast}


def mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MB"


# --- timing and attribution of detector code ---------------------------------------------------


class Attribution:
    """Which detector's code is running (for query capture) and how long each one ran.

    Detector rules are generators that the engine iterates while upserting what they yield; the
    wrapper times only the detector's own steps (its next() calls, queries included), so the
    engine's upserts between them are not charged to the detector.
    """

    def __init__(self):
        self.current = "worker"
        self.seconds: Counter = Counter()
        self.calls: Counter = Counter()
        self._saved: list[tuple] = []

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def _wrap(self, label: str, method):
        attribution = self

        @functools.wraps(method)
        def wrapper(self_, *args, **kwargs):
            attribution.calls[label] += 1
            previous, attribution.current = attribution.current, label
            start = time.perf_counter()
            try:
                iterator = iter(method(self_, *args, **kwargs) or ())
            finally:
                attribution.seconds[label] += time.perf_counter() - start
                attribution.current = previous
            while True:
                previous, attribution.current = attribution.current, label
                start = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    attribution.seconds[label] += time.perf_counter() - start
                    attribution.current = previous
                yield item

        return wrapper

    def _wrap_plain(self, label: str, function):
        attribution = self

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            previous, attribution.current = attribution.current, label
            try:
                return function(*args, **kwargs)
            finally:
                attribution.current = previous

        return wrapper

    def install(self) -> None:
        from anomalies import engine
        from anomalies.registry import load_detectors

        for name, detector in load_detectors().items():
            for method in ("evaluate", "scan"):
                if method in vars(detector):
                    self._saved.append((detector, method, vars(detector)[method]))
                    setattr(detector, method, self._wrap(f"{name}.{method}", vars(detector)[method]))
        for function, label in (("_apply_finding", "engine (anomaly upsert)"),
                                ("_apply_recovery", "engine (anomaly upsert)"),
                                ("_run", "engine._run (savepoint per detector)"),
                                ("run_scans", "engine.run_scans")):
            self._saved.append((engine, function, getattr(engine, function)))
            setattr(engine, function, self._wrap_plain(label, getattr(engine, function)))

    def uninstall(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            setattr(owner, name, original)


IN_LIST = re.compile(r"%s(?:, %s)+")
SAVEPOINT_NAME = re.compile(r'"s\d+_x\d+"')


def shape(sql: str) -> str:
    """The statement with IN lists and savepoint names collapsed (the same query with 3 or 30 ids is one shape)."""
    return SAVEPOINT_NAME.sub('"s…"', IN_LIST.sub("%s, ...", " ".join(sql.split())))


def verb_of(sql: str) -> str:
    return sql.lstrip().split(None, 1)[0].upper()


class StatementCounter:
    """A cheap execute_wrapper for the timed drain: statements and time inside cursor.execute, per verb."""

    def __init__(self):
        self.count: Counter = Counter()
        self.seconds: Counter = Counter()

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            verb = verb_of(sql)
            self.count[verb] += 1
            self.seconds[verb] += time.perf_counter() - start


class QueryCapture:
    """connection.execute_wrapper: every statement with its parameters, duration and detector."""

    def __init__(self, attribution: Attribution):
        self.attribution = attribution
        self.shapes: dict[tuple[str, str], dict] = {}
        self.statements: Counter = Counter()

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - start
            label = self.attribution.current
            self.statements[label] += 1
            key = (label, shape(sql))
            entry = self.shapes.get(key)
            if entry is None:
                entry = self.shapes[key] = {"count": 0, "total_s": 0.0, "max_s": -1.0, "sql": sql, "params": params}
            entry["count"] += 1
            entry["total_s"] += elapsed
            if elapsed > entry["max_s"] and not many:
                entry["max_s"], entry["sql"], entry["params"] = elapsed, sql, params


# --- the measurements --------------------------------------------------------------------------


def backend_pid() -> int:
    from django.db import connection

    connection.ensure_connection()
    return sql_rows("SELECT pg_backend_pid()")[0][0]


def timed_drain(attribution: Attribution) -> dict:
    """One webhooks.worker.drain() in this process, claim and processing timed apart."""
    import webhooks.worker as worker

    timings = {"claims": 0, "claim_s": 0.0, "process_s": 0.0, "largest_claim": 0}
    real_claim, real_process = worker.claim_batch, worker.process_claimed

    def timed_claim(*args, **kwargs):
        start = time.perf_counter()
        claimed = real_claim(*args, **kwargs)
        timings["claim_s"] += time.perf_counter() - start
        timings["claims"] += 1
        timings["largest_claim"] = max(timings["largest_claim"], len(claimed))
        return claimed

    def timed_process(claimed):
        start = time.perf_counter()
        result = real_process(claimed)
        timings["process_s"] += time.perf_counter() - start
        return result

    from django.db import connection

    pid = backend_pid()
    attribution.reset()
    counter = StatementCounter()
    worker.claim_batch, worker.process_claimed = timed_claim, timed_process
    try:
        real_commit = connection.commit

        def counted_commit():
            counter.count["COMMIT"] += 1
            start = time.perf_counter()
            try:
                return real_commit()
            finally:
                counter.seconds["COMMIT"] += time.perf_counter() - start

        connection.commit = counted_commit
        with connection.execute_wrapper(counter), MachineWindow(pid) as window:
            total = worker.drain()
    finally:
        worker.claim_batch, worker.process_claimed = real_claim, real_process
        vars(connection).pop("commit", None)
    # COMMIT goes through connection.commit() (counted above); psycopg also sends a BEGIN of its own before
    # the first statement of each transaction, one more round trip per COMMIT that no wrapper sees.
    return {"claimed": total, **window.as_dict(), **timings, "detector_s": dict(attribution.seconds),
            "detector_calls": dict(attribution.calls), "statements": dict(counter.count),
            "statement_s": dict(counter.seconds)}


def timed_scan_pass(tenant_count: int, as_of: datetime, attribution: Attribution) -> dict:
    """One anomalies.scans.run_due_scans() over every tenant (all made due first)."""
    from anomalies.scans import run_due_scans
    from tenants.models import Tenant

    Tenant.objects.update(next_scan_at=None)
    pid = backend_pid()
    attribution.reset()
    with MachineWindow(pid) as window:
        scanned = run_due_scans(now=as_of, limit=tenant_count)
    return {"tenants_scanned": scanned, **window.as_dict(), "detector_s": dict(attribution.seconds),
            "detector_calls": dict(attribution.calls)}


def check_workload(ids: list[int]) -> dict:
    rows = sql_rows(
        f"SELECT status, attempts, available_at IS NULL, detector_errors <> '[]'::jsonb, count(*) "
        f"FROM {EVENT_TABLE} WHERE id = ANY(%s) GROUP BY 1, 2, 3, 4",
        [ids],
    )
    processed_once = sum(r[4] for r in rows if r[0] == "processed" and r[1] == 1 and r[2])
    with_errors = sum(r[4] for r in rows if r[3])
    errors = sql_rows(
        f"SELECT e->>'detector', left(e->>'error', 200), count(*) FROM {EVENT_TABLE}, "
        f"jsonb_array_elements(detector_errors) e WHERE id = ANY(%s) GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10",
        [ids],
    )
    anomalies = sql_rows("SELECT detector, count(*) FROM anomalies_anomaly GROUP BY 1 ORDER BY 1")
    return {"events": len(ids), "processed_once": processed_once, "with_detector_errors": with_errors,
            "detector_errors": [list(map(str, e)) for e in errors], "anomalies": dict(anomalies),
            "ok": processed_once == len(ids) and with_errors == 0}


def reset_workload(ids: list[int]) -> None:
    """Put the workload back as it was before the drain, for another attempt: pending, no anomalies."""
    # CASCADE: alert deliveries (and anything else added later) point at anomalies.
    sql_exec("TRUNCATE anomalies_anomaly, anomalies_anomalyoccurrence, anomalies_anomalystatuschange CASCADE")
    sql_exec(
        f"UPDATE {EVENT_TABLE} SET status = 'pending', attempts = 0, available_at = received_at, processed_at = NULL, "
        "last_error = '', detector_errors = '[]'::jsonb WHERE id = ANY(%s)", [ids])
    sql_exec(f"VACUUM ANALYZE {EVENT_TABLE}")


def profile_drain(workload_ids: list[int], path: Path) -> None:
    """One more (untimed) drain of the workload under cProfile; the stats go to `path` and the top
    of the cumulative listing to stderr."""
    import cProfile
    import pstats

    from webhooks import worker

    reset_workload(workload_ids)
    from django.db import connections

    connections.close_all()
    profiler = cProfile.Profile()
    profiler.runcall(worker.drain)
    profiler.dump_stats(path)
    log(f"profile of one drain written to {path}")
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)


def sample_for_capture(new_tenant, workload_ids: list[int], labels: list, per_detector: int) -> list[int]:
    """Up to `per_detector` events of each detector's types of one tenant: workload events first (late
    deliveries first, so webhook_lag runs its queries), then the events of the anomalies injected for
    that detector, then other injected events, then the newest history."""
    from anomalies.registry import load_detectors

    tenant_id = new_tenant.tenant.pk
    injected = sorted({eid for label in labels for eid in label.get("event_ids", [])})
    chosen: set[int] = set()
    for name, detector in load_detectors().items():
        if not detector.event_types:
            continue
        types = sorted(detector.event_types)
        own = sorted({eid for label in labels if label.get("detector") == name for eid in label.get("event_ids", [])})
        picked = [r[0] for r in sql_rows(
            f"SELECT id FROM {EVENT_TABLE} WHERE tenant_id = %s AND id = ANY(%s) AND type = ANY(%s) "
            "ORDER BY received_at - created > interval '5 minutes' DESC, created DESC LIMIT %s",
            [tenant_id, workload_ids, types, per_detector // 2])]
        for stripe_ids in (own, injected):
            picked += [r[0] for r in sql_rows(
                f"SELECT id FROM {EVENT_TABLE} WHERE tenant_id = %s AND stripe_id = ANY(%s) AND type = ANY(%s) "
                "AND NOT id = ANY(%s) ORDER BY created LIMIT %s",
                [tenant_id, stripe_ids, types, picked, max(0, per_detector - len(picked))])]
        picked += [r[0] for r in sql_rows(
            f"SELECT id FROM {EVENT_TABLE} WHERE tenant_id = %s AND type = ANY(%s) AND NOT id = ANY(%s) "
            "ORDER BY created DESC LIMIT %s", [tenant_id, types, picked, max(0, per_detector - len(picked))])]
        chosen.update(picked)
    return sorted(chosen)


def capture_queries(new_tenants: list, workload_tenant, idle_tenant, sample_ids: list[int], as_of: datetime,
                    attribution: Attribution) -> tuple[QueryCapture, dict]:
    """Reprocess the sample and scan two tenants with every statement captured."""
    from django.db import connection

    from anomalies import engine
    from tenants.scope import tenant_scope
    from webhooks.worker import drain

    sql_exec(
        f"UPDATE {EVENT_TABLE} SET status = 'pending', attempts = 0, available_at = now() - interval '1 second' "
        "WHERE id = ANY(%s)", [sample_ids])
    capture = QueryCapture(attribution)
    attribution.reset()
    with connection.execute_wrapper(capture):
        start = time.perf_counter()
        drained = drain(only_ids=sample_ids)
        drain_s = time.perf_counter() - start
        evaluate_s = dict(attribution.seconds)
        attribution.reset()
        start = time.perf_counter()
        for tenant in (workload_tenant, idle_tenant):
            with tenant_scope(tenant.tenant):
                engine.run_scans(tenant.tenant, as_of=as_of)
        scan_s = time.perf_counter() - start
    return capture, {"sample_events": drained, "sample_drain_s": drain_s, "sample_detector_s": evaluate_s,
                     "scan_two_tenants_s": scan_s, "scan_detector_s": dict(attribution.seconds)}


# --- EXPLAIN -------------------------------------------------------------------------------------


def plan_nodes(node: dict, depth: int = 0):
    yield depth, node
    for child in node.get("Plans", ()):
        yield from plan_nodes(child, depth + 1)


def describe_node(node: dict) -> str:
    text = node["Node Type"]
    if node.get("Index Name"):
        text += f" using {node['Index Name']}"
    if node.get("Relation Name"):
        text += f" on {node['Relation Name']}"
    return text


def explain_all(capture: QueryCapture) -> list[dict]:
    """EXPLAIN every captured statement shape, with the parameters of its slowest run."""
    from django.db import connection

    results = []
    for (label, _), entry in sorted(capture.shapes.items(), key=lambda kv: (kv[0][0], -kv[1]["total_s"])):
        sql, params = entry["sql"], entry["params"]
        verb = verb_of(sql)
        if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT", "SET"):
            results.append({"detector": label, "verb": verb, "sql": shape(sql), "count": entry["count"],
                            "total_ms": entry["total_s"] * 1000, "max_ms": entry["max_s"] * 1000, "explained": False})
            continue
        analyze = verb in ("SELECT", "WITH")
        options = "ANALYZE, BUFFERS, " if analyze else ""
        record = {"detector": label, "verb": verb, "sql": shape(sql), "count": entry["count"],
                  "total_ms": entry["total_s"] * 1000, "max_ms": entry["max_s"] * 1000, "explained": True,
                  "analyzed": analyze}
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN ({options}FORMAT JSON) {sql}", params)
                plan = cursor.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                cursor.execute(f"EXPLAIN ({options}FORMAT TEXT) {sql}", params)
                text = "\n".join(row[0] for row in cursor.fetchall())
        except Exception as exc:  # noqa: BLE001 - report it, go on with the others
            record.update(explained=False, error=f"{type(exc).__name__}: {exc}")
            results.append(record)
            continue
        top = plan[0]["Plan"]
        nodes = list(plan_nodes(top))
        scans = [describe_node(n) for _, n in nodes if n.get("Relation Name") or n.get("Index Name")]
        record.update(
            top=describe_node(top),
            scans=scans,
            indexes=sorted({n["Index Name"] for _, n in nodes if n.get("Index Name")}),
            seq_scan_events=any(n["Node Type"] == "Seq Scan" and n.get("Relation Name") == EVENT_TABLE
                                for _, n in nodes),
            execution_ms=plan[0].get("Execution Time"),
            planning_ms=plan[0].get("Planning Time"),
            rows_read=round(sum((n.get("Actual Rows", 0) + n.get("Rows Removed by Filter", 0)) * n.get("Actual Loops", 1)
                                for _, n in nodes if n.get("Relation Name") == EVENT_TABLE)) if analyze else None,
            shared_hit=top.get("Shared Hit Blocks"), shared_read=top.get("Shared Read Blocks"),
            params=[str(p)[:120] for p in (params or [])],
            plan_text=text,
        )
        results.append(record)
    return results


def write_explain_file(path: Path, results: list[dict], context: dict) -> None:
    lines = [
        "EXPLAIN of every distinct statement the detectors (and the worker/engine around them) ran",
        f"while bench/processing.py reprocessed a sample of events and scanned two tenants, against the",
        f"{context['history']:,}-row history ({context['table']}).",
        "SELECTs: EXPLAIN (ANALYZE, BUFFERS) with the parameters of the statement's slowest capture;",
        "writes: plain EXPLAIN. 'runs' and 'ms' are from the capture (client-side, round trip included).",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by: {context['command']}",
        "",
    ]
    for record in results:
        if not record.get("explained") and "error" not in record:
            continue
        lines.append("=" * 100)
        lines.append(f"[{record['detector']}]  runs={record['count']}  total={record['total_ms']:.1f} ms  "
                     f"slowest={record['max_ms']:.2f} ms"
                     + ("  ** SEQ SCAN ON webhooks_stripeevent **" if record.get("seq_scan_events") else ""))
        lines.append(record["sql"])
        if record.get("params"):
            lines.append(f"params: {record['params']}")
        lines.append("-" * 100)
        lines.append(record.get("plan_text") or record.get("error", ""))
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def shorten(sql: str, width: int = 150) -> str:
    sql = re.sub(r'"[a-z_]+"\."([a-z_]+)"', r"\1", sql)
    sql = re.sub(r"SELECT .*? FROM", "SELECT … FROM", sql, count=1)
    return sql if len(sql) <= width else sql[: width - 1] + "…"


# --- one history size ----------------------------------------------------------------------------


def run_size(args, history: int, stream: list, lags: list, labels: list, explain: bool) -> dict:
    from django.db import connections

    db = ThrowawayDatabase(args.database_url)
    per_tenant = history // args.tenants
    workload_per_tenant = args.workload_events // args.workload_tenants
    workload = stream[-workload_per_tenant:]
    workload_lags = lags[-workload_per_tenant:]
    pool_end = len(stream) - workload_per_tenant
    past = stream[pool_end - per_tenant:pool_end]
    past_lags = lags[pool_end - per_tenant:pool_end]

    def received(event, lag):
        return datetime.fromtimestamp(event["created"], tz=UTC) + timedelta(seconds=lag)

    log(f"=== history {history:,} rows ({per_tenant:,} per tenant x {args.tenants}); database {db.name}")
    db.create()
    result: dict = {"history_target": history, "history_per_tenant": per_tenant}
    attribution = Attribution()
    try:
        start = time.perf_counter()
        new_tenants = create_tenants(args.tenants)
        log(f"migrated and created {args.tenants} tenants in {time.perf_counter() - start:.0f} s")

        start = time.perf_counter()
        first = new_tenants[0]
        store_events(first, [(e, received(e, lag)) for e, lag in zip(past, past_lags)])
        sql_exec(f"UPDATE {EVENT_TABLE} SET status = 'processed', available_at = NULL, attempts = 1, "
                 "processed_at = received_at WHERE tenant_id = %s", [first.tenant.pk])
        log(f"stored {len(past):,} history events for tenant 1 in {time.perf_counter() - start:.0f} s")
        start = time.perf_counter()
        replicate_history(first, new_tenants[1:])
        result["replicate_s"] = time.perf_counter() - start
        start = time.perf_counter()
        sql_exec(f"VACUUM ANALYZE {EVENT_TABLE}")
        log(f"VACUUM ANALYZE in {time.perf_counter() - start:.0f} s")
        result["table"] = table_size()
        log(f"history table: {result['table']['rows']:,} rows, {mb(result['table']['total_bytes'])} total "
            f"(heap {mb(result['table']['heap_bytes'])}, TOAST {mb(result['table']['toast_bytes'])}, "
            f"indexes {mb(result['table']['index_bytes'])})")

        workload_tenants = new_tenants[:: max(1, args.tenants // args.workload_tenants)][: args.workload_tenants]
        workload_ids: list[int] = []
        items = [(e, received(e, lag)) for e, lag in zip(workload, workload_lags)]
        for new in workload_tenants:
            workload_ids += store_events(new, items)
        sql_exec(f"ANALYZE {EVENT_TABLE}")  # what autovacuum does soon after the insert
        span = (workload[-1]["created"] - workload[0]["created"]) / 3600
        log(f"stored {len(workload_ids):,} pending workload events ({workload_per_tenant} for each of "
            f"{len(workload_tenants)} tenants, {span:.1f} h of the account's traffic)")
        result["workload_types"] = dict(Counter(e["type"] for e in workload).most_common())
        result["workload_span_hours"] = span

        connections.close_all()
        attribution.install()
        try:
            attempts = []
            for attempt in range(1 + args.retries):
                if attempt:
                    reset_workload(workload_ids)
                    connections.close_all()
                busy = wait_for_idle(args.wait_idle)
                calibration = cpu_calibration()
                log(f"attempt {attempt + 1}: machine {busy * 100:.0f} % busy before the drain; 5M-iteration Python "
                    f"loop: {calibration:.2f} s CPU")
                drain = timed_drain(attribution)
                drain.update(attempt=attempt + 1, idle_share_before=busy, cpu_calibration_s=calibration,
                             events_per_s=drain["claimed"] / drain["wall_s"])
                attempts.append(drain)
                log(f"drained {drain['claimed']:,} events in {drain['wall_s']:.2f} s: {drain['events_per_s']:.0f} "
                    f"events/s (worker CPU {drain['worker_cpu_s']:.1f} s, PostgreSQL backend CPU "
                    f"{drain['postgres_backend_cpu_s']:.1f} s, others {drain['other_cpu_share'] * 100:.0f} % of the "
                    "machine)")
                if drain["other_cpu_share"] <= args.max_other_cpu:
                    break
                log(f"other processes used more than {args.max_other_cpu * 100:.0f} % of the machine: "
                    + ("trying again" if attempt < args.retries else "no clean attempt left"))
            # The least disturbed attempt is the result; every attempt is in the JSON.
            drain = result["drain"] = min(attempts, key=lambda a: a["other_cpu_share"])
            drain["clean"] = drain["other_cpu_share"] <= args.max_other_cpu
            result["drain_attempts"] = [{k: v for k, v in a.items() if not isinstance(v, dict)} for a in attempts]
            result["cpu_calibration_s"] = drain["cpu_calibration_s"]
            statements = sum(drain["statements"].values())
            savepoints = drain["statements"].get("SAVEPOINT", 0) + drain["statements"].get("RELEASE", 0)
            log(f"{statements / drain['claimed']:.1f} statements per event ({savepoints / drain['claimed']:.1f} "
                f"SAVEPOINT/RELEASE), {sum(drain['statement_s'].values()) / drain['wall_s'] * 100:.0f} % of the "
                "wall time inside cursor.execute")
            result["check"] = check_workload(workload_ids)
            if args.profile:
                profile_drain(workload_ids, args.profile)
                result["check"] = check_workload(workload_ids)
            log(f"check: {result['check']['processed_once']}/{len(workload_ids)} processed once, "
                f"{result['check']['with_detector_errors']} with detector errors; anomalies {result['check']['anomalies']}")

            as_of = max(at for _, at in items) + timedelta(seconds=60)
            scans = []
            for attempt in range(1 + args.retries):
                busy = wait_for_idle(args.wait_idle)
                scan = timed_scan_pass(args.tenants, as_of, attribution)
                scan.update(attempt=attempt + 1, idle_share_before=busy)
                scans.append(scan)
                log(f"scan pass over {scan['tenants_scanned']} tenants: {scan['wall_s']:.2f} s (worker CPU "
                    f"{scan['worker_cpu_s']:.1f} s, PostgreSQL backend CPU {scan['postgres_backend_cpu_s']:.1f} s, "
                    f"others {scan['other_cpu_share'] * 100:.0f} %)")
                if scan["other_cpu_share"] <= args.max_other_cpu:
                    break
            # Later passes find the anomalies of the first one already open: a little less work.
            result["scan"] = min(scans, key=lambda a: a["other_cpu_share"])
            result["scan"]["clean"] = result["scan"]["other_cpu_share"] <= args.max_other_cpu

            sample = sample_for_capture(workload_tenants[0], workload_ids, labels, args.sample_per_detector)
            capture, capture_info = capture_queries(new_tenants, workload_tenants[0], new_tenants[1], sample, as_of,
                                                    attribution)
        finally:
            attribution.uninstall()
        result["capture"] = capture_info
        result["statements_per_detector"] = dict(capture.statements)
        per_label: dict[str, dict] = defaultdict(lambda: {"statements": 0, "sql_ms": 0.0, "shapes": 0})
        for (label, _), entry in capture.shapes.items():
            per_label[label]["statements"] += entry["count"]
            per_label[label]["sql_ms"] += entry["total_s"] * 1000
            per_label[label]["shapes"] += 1
        result["capture_per_label"] = dict(per_label)
        log(f"captured {sum(capture.statements.values()):,} statements, {len(capture.shapes)} shapes, "
            f"reprocessing {capture_info['sample_events']} sample events")
        if explain:
            start = time.perf_counter()
            result["explain"] = explain_all(capture)
            log(f"EXPLAINed {sum(1 for r in result['explain'] if r.get('explained'))} statement shapes in "
                f"{time.perf_counter() - start:.0f} s")
        result["table_after"] = table_size()
    finally:
        if args.keep_database:
            log(f"kept database {db.name}")
            connections.close_all()
        else:
            db.drop()
            log(f"dropped database {db.name}")
    return result


# --- reporting -------------------------------------------------------------------------------------


def markdown_table(results: list[dict]) -> str:
    base = results[0]["drain"]["events_per_s"]
    lines = [
        "| history rows | table size (heap+TOAST+indexes) | events processed | seconds | events/s (1 worker) "
        "| events / (worker + PG backend CPU s) | ratio to the first row (time/event) | scan pass, all tenants (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        d = r["drain"]
        by_cpu = d["claimed"] / (d["worker_cpu_s"] + (d["postgres_backend_cpu_s"] or 0))
        lines.append(
            f"| {r['table']['rows']:,} | {mb(r['table']['total_bytes'])} | {d['claimed']:,} | {d['wall_s']:.2f} | "
            f"{d['events_per_s']:.0f}{'' if d['clean'] else ' (disturbed)'} | {by_cpu:.0f} | {base / d['events_per_s']:.2f}x | "
            f"{r['scan']['wall_s']:.2f}{'' if r['scan']['clean'] else ' (disturbed)'} |"
        )
    return "\n".join(lines)


def breakdown_table(results: list[dict]) -> str:
    lines = ["| history rows | claim s | process s | worker CPU s | PG backend CPU s | other load (share of machine) "
             "| statements/event (+BEGIN) | of which BEGIN/COMMIT/SAVEPOINT/RELEASE | wall in execute+commit | CPU check (s) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        d = r["drain"]
        n = d["claimed"]
        savepoints = d["statements"].get("SAVEPOINT", 0) + d["statements"].get("RELEASE", 0)
        savepoints += 2 * d["statements"].get("COMMIT", 0)  # COMMIT, and psycopg's BEGIN
        lines.append(
            f"| {r['table']['rows']:,} | {d['claim_s']:.2f} | {d['process_s']:.2f} | {d['worker_cpu_s']:.2f} | "
            f"{d['postgres_backend_cpu_s']:.2f} | {d['other_cpu_share'] * 100:.0f} % | "
            f"{(sum(d['statements'].values()) + d['statements'].get('COMMIT', 0)) / n:.1f} | {savepoints / n:.1f} | "
            f"{sum(d['statement_s'].values()) / d['wall_s'] * 100:.0f} % | {r['cpu_calibration_s']:.2f} |")
    return "\n".join(lines)


def detector_table(results: list[dict]) -> str:
    labels = sorted({k for r in results for k in r["drain"]["detector_s"]},
                    key=lambda k: -results[-1]["drain"]["detector_s"].get(k, 0))
    head = "| detector rule | " + " | ".join(f"{r['table']['rows']:,} rows: calls, s" for r in results) + " |"
    lines = [head, "|---|" + "---:|" * len(results)]
    for label in labels:
        cells = [f"{r['drain']['detector_calls'].get(label, 0):,}, {r['drain']['detector_s'].get(label, 0):.2f}"
                 for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scan_table(results: list[dict]) -> str:
    labels = sorted({k for r in results for k in r["scan"]["detector_s"]},
                    key=lambda k: -results[-1]["scan"]["detector_s"].get(k, 0))
    lines = ["| scan rule | " + " | ".join(f"{r['table']['rows']:,} rows: s" for r in results) + " |",
             "|---|" + "---:|" * len(results)]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(f"{r['scan']['detector_s'].get(label, 0):.2f}" for r in results) + " |")
    return "\n".join(lines)


def explain_summary(records: list[dict]) -> str:
    lines = ["| code | query (shortened) | runs | top node | access paths | rows read | ms (server) | ms (slowest run, client) |",
             "|---|---|---:|---|---|---:|---:|---:|"]
    for r in records:
        if not r.get("explained"):
            continue
        flag = " **SEQ SCAN**" if r.get("seq_scan_events") else ""
        ms = f"{r['execution_ms']:.2f}" if r.get("execution_ms") is not None else "(EXPLAIN only)"
        rows = "" if r.get("rows_read") is None else f"{r['rows_read']:,}"
        scans = "; ".join(dict.fromkeys(s.replace(" on webhooks_stripeevent", "") for s in r.get("scans", [])))
        lines.append(f"| {r['detector']} | `{shorten(r['sql'], 100)}` | {r['count']} | {r['top']} | {scans}{flag} | "
                     f"{rows} | {ms} | {r['max_ms']:.2f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, action="append",
                        help="rows of history in the table (repeatable; default 10000 and 1000000, smallest first)")
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--workload-events", type=int, default=4000, help="pending events to process (default 4000)")
    parser.add_argument("--workload-tenants", type=int, default=10)
    parser.add_argument("--customers", type=int, default=1500, help="customers of the simulated account")
    parser.add_argument("--days", type=int, default=34, help="days of the simulated account")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end", default=DEFAULT_END, help="end of the simulated window (ISO time)")
    parser.add_argument("--sim-cache", type=Path, default=Path("/tmp"),
                        help="directory caching the simulated stream ('' to disable)")
    parser.add_argument("--sample-per-detector", type=int, default=20)
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server on loopback (a throwaway database is created on it)")
    parser.add_argument("--wait-idle", type=float, default=600.0, help="wait up to this long for an idle machine")
    parser.add_argument("--retries", type=int, default=2,
                        help="measure again (up to this many times) when other processes disturbed a measurement")
    parser.add_argument("--max-other-cpu", type=float, default=0.15,
                        help="share of the machine other processes may use during a clean measurement")
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--profile", type=Path, help="after the timed drain, drain once more under cProfile into this file")
    parser.add_argument("--explain-file", type=Path, default=ROOT / "docs" / "explain-detectors.txt")
    parser.add_argument("--json", type=Path, help="write every number to this file")
    parser.add_argument("--markdown", action="store_true", help="print the results as Markdown tables")
    parser.add_argument("--keep-database", action="store_true")
    return parser.parse_args(argv)


def stop_on_signal(signum, _frame):
    raise SystemExit(f"stopped by signal {signum}")  # unwinds through the finally that drops the database


def main(argv=None) -> int:
    import signal

    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    sizes = sorted(set(args.history or [10_000, 1_000_000]))
    if any(size % args.tenants for size in sizes):
        raise SystemExit("--history must be a multiple of --tenants")
    setup_django(with_dbname(args.database_url, f"bench_processing_{os.getpid()}"))
    end = datetime.fromisoformat(args.end)
    cache = args.sim_cache if str(args.sim_cache) not in ("", ".") else None
    stream, labels = simulated_stream(args.seed, args.days, args.customers, end, cache)
    needed = max(sizes) // args.tenants + args.workload_events // args.workload_tenants
    if len(stream) < needed:
        raise SystemExit(f"the simulated account has {len(stream):,} events, {needed:,} are needed: raise --days")
    lags = delivery_lags(stream, args.seed)
    results = []
    for size in sizes:
        results.append(run_size(args, size, stream, lags, labels, explain=not args.no_explain and size == sizes[-1]))
    command = "python bench/processing.py " + " ".join(argv if argv is not None else sys.argv[1:])
    largest = results[-1]
    if "explain" in largest:
        write_explain_file(args.explain_file, largest["explain"],
                           {"history": largest["table"]["rows"], "command": command.strip(),
                            "table": f"{mb(largest['table']['total_bytes'])} with indexes and TOAST"})
        log(f"plans written to {args.explain_file}")
    rates = [r["drain"]["events_per_s"] for r in results]
    ratio = rates[0] / rates[-1]
    met_rate = all(rate >= TARGET_PER_SECOND for rate in rates)
    met_ratio = ratio <= TARGET_RATIO
    summary = {"events_per_s": rates, "ratio_smallest_to_largest": ratio, "target_per_s_met": met_rate,
               "target_ratio_met": met_ratio}
    if args.json:
        args.json.write_text(json.dumps({"command": command, "summary": summary, "results": results},
                                        indent=1, default=str))
    if args.markdown:
        print(markdown_table(results))
        print()
        print(f"Targets: >= {TARGET_PER_SECOND} events/s per worker: {'met' if met_rate else 'MISSED'} "
              f"({', '.join(f'{r:.0f}' for r in rates)}); largest history within {TARGET_RATIO}x of the smallest: "
              f"{'met' if met_ratio else 'MISSED'} ({ratio:.2f}x).")
        print()
        print("Where the drain's time went:\n")
        print(breakdown_table(results))
        print()
        print("Time inside each detector rule during the timed drain (its own steps, queries included):\n")
        print(detector_table(results))
        print()
        print("Scan pass, time per scan rule:\n")
        print(scan_table(results))
        if "explain" in largest:
            print()
            print(f"Detector queries on the {largest['table']['rows']:,}-row table:\n")
            print(explain_summary(largest["explain"]))
    else:
        print(json.dumps(summary, indent=1))
    if not all(r["drain"]["clean"] for r in results):
        log("some drain was disturbed by other processes in every attempt: the numbers are not clean")
        return 3
    return 0 if met_rate and met_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
