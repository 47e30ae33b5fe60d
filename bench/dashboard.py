#!/usr/bin/env python
"""Dashboard benchmark: server time of the overview page for a tenant with 1M events on PostgreSQL.

1. creates a throwaway PostgreSQL database (bench_processing_<pid>, the helpers of bench/processing.py),
   migrates it and creates one tenant with an owner;
2. history: one simulated Stripe account (anomalies.simulation, --customers customers, --days days
   ending now, every injectable anomaly in it) is stored through webhooks.store.store_event and marked
   processed; then it is copied back in time with INSERT ... SELECT until the tenant holds --events
   rows spread over --span-days (copy k: ids suffixed, `created` and `received_at` shifted
   (k mod slots) x --days days plus k minutes earlier, slots = span / days: the copies overlap, so
   every window the overview reads is as dense as a 1M-event account's last year); the
   anomalies the detectors would have raised are stood in for by --anomalies rows; VACUUM ANALYZE;
3. measures, in this process, Django's whole request handling (middleware, the view, every query,
   template rendering) of GET /t/<slug>/ with a logged-in owner (django.test.Client): --warmup
   requests, then --requests timed ones; p50/p95/max and the queries of one request. The anomaly
   list and the events explorer are timed the same way;
4. drops the database.

    .venv/bin/python bench/dashboard.py --markdown
    .venv/bin/python bench/dashboard.py --events 100000 --requests 30

Waits (up to --wait-idle s) for the machine to be at most 15 % busy before timing, as the other
benchmarks do. Exit code 0 when the overview's p95 is under --target-ms (300), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import log, wait_for_idle  # noqa: E402  (bench/machine.py)
from processing import (  # noqa: E402  (the shared throwaway-database helpers)
    EVENT_TABLE,
    ThrowawayDatabase,
    mb,
    setup_django,
    simulated_stream,
    sql_exec,
    sql_rows,
    store_events,
    table_size,
)

SLUG = "dashboard-bench"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=40, help="days of the simulated account (copied back in time)")
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--span-days", type=int, default=365, help="days the copied history covers")
    parser.add_argument("--anomalies", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--target-ms", type=float, default=300.0)
    parser.add_argument("--wait-idle", type=float, default=120.0)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile one overview request (to stderr)")
    return parser.parse_args(argv)


def build_tenant(args):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from tenants.onboarding import create_tenant

    call_command("migrate", verbosity=0)
    new = create_tenant("Dashboard bench", slug=SLUG, webhook_secret="whsec_dashboardbench000001",
                        owner_email="owner@bench.example")
    return new, get_user_model().objects.get(email="owner@bench.example")


def fill_history(args, new) -> dict:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    stream, _ = simulated_stream(args.seed, args.days, args.customers, end, None)
    stream = [e for e in stream if datetime.fromtimestamp(e["created"], UTC) <= end]
    store_events(new, [(e, datetime.fromtimestamp(e["created"], UTC) + timedelta(seconds=3)) for e in stream])
    sql_exec(f"UPDATE {EVENT_TABLE} SET status = 'processed', available_at = NULL, processed_at = received_at, "
             "attempts = 1 WHERE tenant_id = %s", [new.tenant.pk])
    from webhooks.models import StripeEvent

    shifted = {"stripe_id": "stripe_id || %s", "created": "created - %s::interval",
               "received_at": "received_at - %s::interval", "processed_at": "processed_at - %s::interval"}
    columns = [f.column for f in StripeEvent._meta.concrete_fields if f.column != "id"]
    select = ", ".join(shifted.get(c, c) for c in columns)
    sql = (f"INSERT INTO {EVENT_TABLE} ({', '.join(columns)}) SELECT {select} FROM {EVENT_TABLE} "
           "WHERE tenant_id = %s AND id <= %s ORDER BY id LIMIT %s")
    (last_id,), = sql_rows(f"SELECT max(id) FROM {EVENT_TABLE} WHERE tenant_id = %s", [new.tenant.pk])
    total, copy, started = len(stream), 0, time.perf_counter()
    slots = max(1, args.span_days // args.days)
    while total < args.events:
        copy += 1
        shift = f"{(copy % slots) * args.days} days {copy} minutes"
        total += sql_exec(sql, [f"_h{copy}", shift, shift, shift, new.tenant.pk, last_id, args.events - total])
        log(f"  copy {copy}: {total:,} events ({time.perf_counter() - started:.0f} s)")
    sql_exec(f"VACUUM ANALYZE {EVENT_TABLE}")
    return {"simulated": len(stream), "copies": copy, "span_days": min(copy + 1, slots) * args.days}


def add_anomalies(args, tenant) -> None:
    from anomalies.models import Anomaly
    from tenants.scope import tenant_scope

    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    rows = []
    for n in range(args.anomalies):
        seen = now - timedelta(hours=rng.uniform(0, 24 * 90))
        rows.append(Anomaly(
            tenant=tenant, livemode=True, detector=rng.choice(["duplicate_charge", "card_testing", "refund_spike"]),
            fingerprint=f"bench{n}", severity=rng.choice(["low", "medium", "high", "critical"]),
            status=rng.choice(["open", "acknowledged", "resolved", "resolved", "false_positive"]),
            title=f"Bench anomaly {n}", summary="Stands in for a detector finding.", customer_id=f"cus_{n}",
            evidence={"event_ids": []}, first_seen_at=seen, last_seen_at=seen,
        ))
    with tenant_scope(tenant):
        Anomaly.objects.bulk_create(rows)


def time_page(client, path: str, warmup: int, requests: int, profile: bool = False) -> dict:
    from django.db import connection

    for _ in range(warmup):
        assert client.get(path).status_code == 200, path
    statements = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        client.get(path)
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(client.get, path)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    times.sort()
    return {
        "path": path, "p50_ms": statistics.median(times), "p95_ms": times[max(0, int(len(times) * 0.95) - 1)],
        "max_ms": times[-1], "queries": len(statements),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    db = ThrowawayDatabase(args.database_url)
    db.create()
    try:
        os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
        setup_django(db.url)
        from django.conf import settings

        settings.STORAGES = {**settings.STORAGES, "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # no collectstatic here
        new, owner = build_tenant(args)
        started = time.perf_counter()
        history = fill_history(args, new)
        add_anomalies(args, new.tenant)
        table = table_size()
        log(f"history ready: {table['rows']:,} events, {mb(table['total_bytes'])} "
            f"({time.perf_counter() - started:.0f} s)")
        from django.test import Client

        client = Client()
        client.force_login(owner)
        busy = wait_for_idle(args.wait_idle)
        results = [time_page(client, f"/t/{SLUG}/{path}", args.warmup, args.requests, args.profile and not path)
                   for path in ("", "anomalies/", "events/")]
        settings.BILLINGWATCH_DASHBOARD_CHART_CACHE_SECONDS = 0  # every request computes everything
        cold = time_page(client, f"/t/{SLUG}/", 1, args.requests, args.profile)
        cold["path"] += " (chart cache off)"
        results.insert(1, cold)
    finally:
        db.drop()
    overview = results[0]
    met = overview["p95_ms"] < args.target_ms
    for r in results:
        log(f"{r['path']}: p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, max {r['max_ms']:.0f} ms, "
            f"{r['queries']} queries")
    if args.markdown:
        print(f"Tenant: {table['rows']:,} events ({history['simulated']:,} simulated over {args.days} days, copied "
              f"{history['copies']}x back in time: {history['span_days']} days), {args.anomalies} anomalies; event "
              f"table {mb(table['total_bytes'])} with indexes. Machine {busy * 100:.0f} % busy before timing.\n")
        print("| page | p50 | p95 | max | queries |")
        print("|---|---:|---:|---:|---:|")
        for r in results:
            print(f"| `{r['path']}` | {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms | {r['max_ms']:.0f} ms | "
                  f"{r['queries']} |")
        print(f"\nTarget: overview p95 < {args.target_ms:.0f} ms: {'met' if met else 'MISSED'}.")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
