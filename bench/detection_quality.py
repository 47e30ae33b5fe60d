#!/usr/bin/env python
"""Detection quality: recall on injected anomalies, false positives on normal traffic.

For each seed: a normal simulated tenant (no injection) must raise nothing;
an injected tenant (every file-injectable anomaly) must raise each label's
detector near the label's time. Both are imported through import_events'
code path (store, process, day-by-day backtest), as a user's history would be.

    .venv/bin/python bench/detection_quality.py --seeds 1-20 --markdown
    .venv/bin/python bench/detection_quality.py --seeds 1-3 --database-url postgres://postgres@127.0.0.1:5432/x

Uses a throwaway database: a temporary SQLite file by default, or a new
PostgreSQL database on the server of --database-url (dropped at the end).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MATCH_BEFORE = timedelta(hours=1)  # an anomaly may be dated a little before the label's "at"
MATCH_AFTER = timedelta(days=2)  # ... or up to the next day's scan after it


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


def setup_database(url: str | None) -> tuple[str, callable]:
    if url is None or url.startswith("sqlite"):
        path = Path(tempfile.mkdtemp()) / "quality.sqlite3"
        return f"sqlite:///{path}", lambda: None
    import psycopg

    name = f"bench_quality_{os.getpid()}"
    parts = urlsplit(url)
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")

    def drop():
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")

    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", "")), drop


def import_stream(tenant, events) -> None:
    from anomalies.simulation import to_jsonl
    from webhooks.importing import import_files

    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        handle.write(to_jsonl(events))
    try:
        report = import_files(tenant, [Path(handle.name)])
    finally:
        os.unlink(handle.name)
    if report.rejected:
        raise SystemExit(f"simulated events were rejected: {report.rejected[:3]}")


def anomalies_of(tenant) -> list:
    from anomalies.models import Anomaly
    from tenants.scope import tenant_scope

    with tenant_scope(tenant):
        return list(Anomaly.objects.order_by("first_seen_at"))


def matches(anomaly, label) -> bool:
    """The anomaly is this injection's: same detector, and caused by its events or at its time and customer.

    An injection may rightly raise a second anomaly of its detector later (a
    750.00 refund that, with two small ones the following week, also lifts the
    7-day refund share): its evidence then names the injected events.
    """
    if anomaly.detector != label["detector"] and anomaly.detector not in label.get("may_also_fire", []):
        return False
    if set(label.get("event_ids", [])) & set(anomaly.evidence.get("event_ids", [])):
        return True
    at = datetime.fromisoformat(label["at"].replace("Z", "+00:00"))
    if not (at - MATCH_BEFORE <= anomaly.first_seen_at <= at + MATCH_AFTER):
        return False
    customer = label.get("customer_id")
    return not (customer and anomaly.customer_id and anomaly.customer_id != customer)


def run(seeds: list[int], days: int, customers: int) -> dict:
    from anomalies.simulation import INJECTABLE, simulate
    from tenants.onboarding import create_tenant

    end = datetime(2026, 6, 1, tzinfo=UTC)
    found = Counter()
    expected = Counter()
    false_positives = Counter()
    extra_examples = defaultdict(list)
    for seed in seeds:
        started = time.monotonic()
        normal = create_tenant(f"Normal {seed}", slug=f"normal-{seed}").tenant
        events, _ = simulate(seed, days, end, customers=customers)
        import_stream(normal, events)
        for anomaly in anomalies_of(normal):
            false_positives[anomaly.detector] += 1
            extra_examples[anomaly.detector].append(f"seed {seed} normal: {anomaly.title}")

        injected = create_tenant(f"Injected {seed}", slug=f"injected-{seed}").tenant
        events, labels = simulate(seed, days, end, customers=customers, inject=INJECTABLE)
        import_stream(injected, events)
        raised = anomalies_of(injected)
        for label in labels:
            expected[label["detector"]] += 1
            if any(a.detector == label["detector"] and matches(a, label) for a in raised):
                found[label["detector"]] += 1
        for anomaly in raised:
            if not any(matches(anomaly, label) for label in labels):
                false_positives[anomaly.detector] += 1
                extra_examples[anomaly.detector].append(f"seed {seed} injected: {anomaly.title}")
        print(f"seed {seed}: {len(raised)} anomalies on the injected stream, "
              f"{time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return {"found": found, "expected": expected, "false_positives": false_positives, "examples": extra_examples}


def report(result: dict, seeds: list[int], days: int, customers: int, markdown: bool) -> None:
    from anomalies.registry import load_detectors

    rows = []
    for name in sorted(load_detectors()):
        expected, found, fp = result["expected"][name], result["found"][name], result["false_positives"][name]
        recall = f"{found / expected:.0%}" if expected else "n/a (webhook only)"
        precision = f"{found / (found + fp):.0%}" if found + fp else "n/a"
        rows.append((name, expected, found, fp, recall, precision))
    total_fp = sum(result["false_positives"].values())
    total_expected, total_found = sum(result["expected"].values()), sum(result["found"].values())
    if markdown:
        print(f"Seeds {seeds[0]}–{seeds[-1]} ({len(seeds)} × {days} days, {customers} customers each; "
              f"normal and injected stream per seed)\n")
        print("| detector | injected | found | false positives | recall | precision |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(str(c) for c in row) + " |")
        print(f"| **all** | {total_expected} | {total_found} | {total_fp} | "
              f"{total_found / max(1, total_expected):.0%} | |")
    else:
        print(json.dumps({"rows": rows, "false_positives": total_fp}, indent=2))
    for name, examples in result["examples"].items():
        for example in examples[:5]:
            print(f"  false positive {name}: {example}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1-20")
    parser.add_argument("--days", type=int, default=40, help="40: silent_lapse needs ~38 days of history")
    parser.add_argument("--customers", type=int, default=150)
    parser.add_argument("--database-url")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    url, drop = setup_database(args.database_url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billingwatch.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    try:
        call_command("migrate", verbosity=0)
        seeds = parse_seeds(args.seeds)
        result = run(seeds, args.days, args.customers)
        report(result, seeds, args.days, args.customers, args.markdown)
    finally:
        drop()


if __name__ == "__main__":
    main()
