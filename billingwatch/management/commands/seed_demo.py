from django.core.management.base import BaseCommand

from billingwatch.demo import ensure_demo


class Command(BaseCommand):
    help = "Create the admin user and the demo tenant with sample events (idempotent)."

    def handle(self, *args, **options):
        info = ensure_demo()
        self.stdout.write(
            f"demo tenant {info.tenant.slug!r}: {info.events_stored} new events; webhook path {info.webhook_path}"
        )
