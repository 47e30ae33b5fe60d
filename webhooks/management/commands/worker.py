from django.core.management.base import BaseCommand

from webhooks.worker import Worker


class Command(BaseCommand):
    help = "Process stored Stripe events (run as many as you like, on any machine)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Process everything that is due, then exit.")

    def handle(self, *args, once: bool = False, **options):
        total = Worker(once=once).run()
        if once:
            self.stdout.write(f"processed {total} events")
