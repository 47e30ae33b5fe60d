"""Queue the digests that are due and send them (and anything else due) now.

The worker does this by itself every minute; the command is for cron setups
without a long-running worker, and for trying a digest out.
"""

from django.core.management.base import BaseCommand

from alerts import digests, dispatch


class Command(BaseCommand):
    help = "Queue due digest e-mails and send due alert deliveries"

    def handle(self, *args, **options):
        queued = digests.queue_due_digests()
        sent = dispatch.drain()
        self.stdout.write(f"{queued} digest(s) queued, {sent} delivery(ies) handled")
