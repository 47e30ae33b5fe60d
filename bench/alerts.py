#!/usr/bin/env python
"""Alerts benchmark: 1,000 anomalies over 100 tenants with 3 channels each, sent to a local receiver.

1. creates a throwaway database (bench_alerts_<pid> on the PostgreSQL server of
   --database-url, or a temporary SQLite file for a sqlite:// URL) and migrates it;
2. creates --tenants tenants with a Slack, a signed-webhook and a PagerDuty
   channel each, all pointed at an HTTP receiver on 127.0.0.1 in this process
   (http and loopback allowed by the benchmark's environment; group wait 0 so
   the time measured is sending, not waiting);
3. opens --anomalies anomalies through the engine (as detectors would, the
   notice hook inside the worker's per-batch channel cache) and times that;
4. runs --processes `manage.py worker --once` processes at once and times until
   they exit (every due delivery sent);
5. checks: every opened delivery row is `sent` with attempts = 1, the receiver
   saw each webhook message id once and each anomaly's PagerDuty trigger once
   (zero duplicates); then drops the database.

    .venv/bin/python bench/alerts.py --markdown
    .venv/bin/python bench/alerts.py --markdown --processes 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from machine import log  # noqa: E402  (bench/machine.py)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.paths = Counter()
        self.webhook_ids = Counter()
        self.pd_triggers = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.paths[self.path] += 1
                    if self.path == "/hook":
                        receiver.webhook_ids[self.headers["BillingWatch-Delivery"]] += 1
                    elif self.path == "/pagerduty":
                        receiver.pd_triggers[json.loads(body)["dedup_key"]] += 1
                self.send_response(202 if self.path == "/pagerduty" else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--anomalies", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    receiver = Receiver()
    parts = urlsplit(args.database_url)
    sqlite_path = None
    if parts.scheme.startswith("sqlite"):
        sqlite_path = tempfile.mktemp(prefix="bench_alerts_", suffix=".sqlite3")
        db_url = f"sqlite:///{sqlite_path}"
        admin_url = None
    else:
        name = f"bench_alerts_{os.getpid()}"
        admin_url = args.database_url
        db_url = urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
        import psycopg

        with psycopg.connect(admin_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "BILLINGWATCH_ALERTS_ALLOW_HTTP": "true",
        "BILLINGWATCH_ALERTS_ALLOW_PRIVATE_NETWORKS": "true",
        "BILLINGWATCH_ALERTS_GROUP_WAIT_SECONDS": "0",
        "BILLINGWATCH_ALERTS_PAGERDUTY_URL": receiver.url("/pagerduty"),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "billingwatch.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections, transaction
    from django.utils import timezone

    from alerts import notices
    from alerts.channels import create_channel
    from alerts.models import AlertDelivery
    from anomalies import engine
    from anomalies.detectors.base import DetectorContext, Finding
    from tenants.models import Tenant
    from tenants.scope import tenant_scope

    try:
        call_command("migrate", verbosity=0)
        log(f"creating {args.tenants} tenants with 3 channels each")
        tenants = []
        for n in range(args.tenants):
            tenant = Tenant.objects.create(name=f"Bench {n}", slug=f"bench-{n}")
            with tenant_scope(tenant):
                create_channel(name="slack", kind="slack", config={"url": receiver.url("/slack")})
                create_channel(name="hook", kind="webhook", config={"url": receiver.url("/hook")})
                create_channel(name="pd", kind="pagerduty", config={"routing_key": "B" * 32})
            tenants.append(tenant)
        log(f"opening {args.anomalies} anomalies through the engine")
        started = time.perf_counter()
        now = timezone.now()
        with notices.batch_cache():
            for i in range(args.anomalies):
                tenant = tenants[i % len(tenants)]
                ctx = DetectorContext(tenant, True, {}, "duplicate_charge")
                finding = Finding(
                    fingerprint=f"bench-{i}", severity="high", title=f"Bench anomaly {i}", summary="benchmark",
                    occurred_at=now, occurrence_key=uuid.uuid4().hex, customer_id=f"cus_{i}",
                    metrics={"amount": 4900, "currency": "usd"},
                )
                with tenant_scope(tenant), transaction.atomic():
                    engine._apply_finding(ctx, "duplicate_charge", finding, engine.Outcome())
        open_seconds = time.perf_counter() - started
        queued = AlertDelivery.all_tenants.filter(kind="opened").count()
        log(f"{queued} deliveries queued in {open_seconds:.2f} s; sending with {args.processes} worker(s)")
        connections.close_all()
        started = time.perf_counter()
        procs = [
            subprocess.Popen([sys.executable, "manage.py", "worker", "--once"], cwd=ROOT, env=env)
            for _ in range(args.processes)
        ]
        for proc in procs:
            proc.wait()
        send_seconds = time.perf_counter() - started
        rows = AlertDelivery.all_tenants.filter(kind="opened")
        statuses = Counter(rows.values_list("status", flat=True))
        attempts = Counter(rows.values_list("attempts", flat=True))
        sent = statuses.get("sent", 0)
        webhook_dups = sum(c - 1 for c in receiver.webhook_ids.values() if c > 1)
        pd_dups = sum(c - 1 for c in receiver.pd_triggers.values() if c > 1)
        clean = (
            sent == queued == 3 * args.anomalies
            and set(attempts) == {1}
            and webhook_dups == 0
            and pd_dups == 0
            and len(receiver.pd_triggers) == args.anomalies
        )
        result = {
            "database": "SQLite" if sqlite_path else "PostgreSQL",
            "workers": args.processes,
            "anomalies": args.anomalies,
            "deliveries": queued,
            "sent": sent,
            "http_requests": dict(receiver.paths),
            "hook_seconds": round(open_seconds, 2),
            "send_seconds": round(send_seconds, 2),
            "deliveries_per_second": round(sent / send_seconds, 1),
            "per_worker": round(sent / send_seconds / args.processes, 1),
            "duplicates": webhook_dups + pd_dups,
            "attempts": dict(attempts),
            "clean": clean,
        }
        print(json.dumps(result, indent=2))
        if args.markdown:
            print(
                f"| {result['database']} | {args.processes} | {queued} | {send_seconds:.1f} | "
                f"**{result['deliveries_per_second']:,}** | {result['per_worker']:,} | "
                f"{sum(receiver.paths.values())} ({', '.join(f'{k} {v}' for k, v in sorted(receiver.paths.items()))}) | "
                f"{result['duplicates']} | {open_seconds:.2f} | {'yes' if clean else 'NO'} |"
            )
        return 0 if clean else 1
    finally:
        connections.close_all()
        if sqlite_path:
            for suffix in ("", "-wal", "-shm"):
                Path(sqlite_path + suffix).unlink(missing_ok=True)
        elif admin_url:
            import psycopg

            with psycopg.connect(admin_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
