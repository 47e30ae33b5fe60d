import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tenants.models import Tenant
from webhooks.importing import import_files


class Command(BaseCommand):
    help = "Import Stripe events from files (JSON array, Stripe list object, or JSON lines); idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, metavar="SLUG")
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--json", action="store_true", help="print the counts as JSON")
        parser.add_argument("--no-process", action="store_true", help="store only; leave processing to workers")

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant with the slug {options['tenant']!r}")
        missing = [p for p in options["paths"] if not Path(p).is_file()]
        if missing:
            raise CommandError(f"no such file: {', '.join(missing)}")
        report = import_files(tenant, [Path(p) for p in options["paths"]], process=not options["no_process"])
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
            return
        self.stdout.write(
            f"stored {report.stored}, duplicates {report.duplicates}, "
            f"rejected {len(report.rejected)}, processed {report.processed}"
        )
        for item in report.rejected:
            position = f"line {item['line']}" if "line" in item else f"item {item.get('index', '-')}"
            self.stderr.write(f"  {item['file']} {position}: {item['reason']}")
