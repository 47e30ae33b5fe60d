"""manage.py simulate: a realistic, deterministic Stripe event stream, with labelled anomalies.

With --out the events go to a JSON-lines file and the labels to FILE.labels.json
(the detection benchmark reads both); without it they are imported into the
tenant through the same path as import_events.
"""

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from anomalies.simulation import DEFAULT_CUSTOMERS, INJECTABLE, LIVE_ONLY, SimulationError, simulate, to_jsonl
from anomalies.simulation.world import API_VERSION
from tenants.models import Tenant
from webhooks.importing import import_files


class Command(BaseCommand):
    help = (
        "Generate a realistic, deterministic stream of Stripe webhook events (same seed, same bytes), "
        "optionally with injected anomalies, and import it into a tenant or write it to a file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="SLUG", help="import into this tenant (required without --out)")
        parser.add_argument("--days", type=int, default=30, help="length of the window (default 30)")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        parser.add_argument(
            "--inject", action="extend", nargs="+", default=[], metavar="NAME",
            help=f"inject an anomaly (repeatable): {', '.join(INJECTABLE)}",
        )
        parser.add_argument("--out", metavar="FILE", help="write JSON lines here (+ FILE.labels.json) instead")
        parser.add_argument("--end", metavar="ISO_DATE", help="end of the window (default: now, to the hour), UTC")
        parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS,
                            help=f"number of customers (default {DEFAULT_CUSTOMERS})")
        parser.add_argument("--testmode", action="store_true", help="test-mode events (livemode false)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        tenant = None
        if options["out"] is None:
            if not options["tenant"]:
                raise CommandError("give --tenant SLUG to import into, or --out FILE to write a file")
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant with the slug {options['tenant']!r}")
        end = _parse_end(options["end"])
        livemode = not options["testmode"]
        try:
            events, labels = simulate(options["seed"], options["days"], end, options["customers"],
                                      options["inject"], livemode)
        except SimulationError as exc:
            raise CommandError(str(exc)) from None
        if options["out"]:
            self._write(options, events, labels, end, livemode)
        else:
            self._import(options, tenant, events, labels)

    def _write(self, options, events, labels, end, livemode):
        out = Path(options["out"])
        labels_path = Path(f"{out}.labels.json")
        out.write_text(to_jsonl(events), encoding="utf-8")
        sidecar = {
            "seed": options["seed"],
            "days": options["days"],
            "start": _iso(end - timedelta(days=options["days"])),
            "end": _iso(end),
            "customers": options["customers"],
            "livemode": livemode,
            "api_version": API_VERSION,
            "events": len(events),
            "injected": sorted({label["detector"] for label in labels}),
            "not_injectable": sorted(LIVE_ONLY),
            "labels": labels,
        }
        labels_path.write_text(json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if options["json"]:
            self.stdout.write(json.dumps({"events": len(events), "labels": labels, "out": str(out),
                                          "labels_file": str(labels_path)}))
        else:
            self.stdout.write(f"wrote {len(events)} events to {out} and {len(labels)} labels to {labels_path}")

    def _import(self, options, tenant, events, labels):
        with tempfile.TemporaryDirectory(prefix="billingwatch-simulate-") as folder:
            path = Path(folder) / "events.jsonl"
            path.write_text(to_jsonl(events), encoding="utf-8")
            report = import_files(tenant, [path], process=True)
        if options["json"]:
            self.stdout.write(json.dumps({"events": len(events), "labels": labels, **report.as_dict()}))
            return
        self.stdout.write(
            f"simulated {len(events)} events ({len(labels)} labels) for {tenant.slug}: stored {report.stored}, "
            f"duplicates {report.duplicates}, rejected {len(report.rejected)}, processed {report.processed}"
        )
        for label in labels:
            self.stdout.write(f"  {label['at']}  {label['detector']}  {label['customer_id'] or ''}".rstrip())


def _parse_end(text: str | None) -> datetime:
    """An ISO date or datetime (naive means UTC); default: now, rounded down to the hour."""
    if text is None:
        return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--end: {text!r} is not an ISO 8601 date or datetime") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
