import json

from django.core.management.base import BaseCommand

from webhooks.retention import prune


class Command(BaseCommand):
    help = (
        "Delete processed events older than each tenant's plan retention. Never deletes events still to "
        "process or the evidence of open anomalies. The worker also runs this once a day."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        parser.add_argument("--json", action="store_true", help="Print {tenant slug: events} as JSON.")

    def handle(self, *args, dry_run: bool = False, json: bool = False, **options):
        result = prune(dry_run=dry_run)
        if json:
            self.stdout.write(_dumps(result))
            return
        verb = "would delete" if dry_run else "deleted"
        for slug, count in result.items():
            self.stdout.write(f"{slug}: {verb} {count} events")
        self.stdout.write(f"{verb} {sum(result.values())} events in {len(result)} tenants")


def _dumps(value) -> str:
    return json.dumps(value, sort_keys=True)
