from django.core.management.base import BaseCommand, CommandError

from tenants.keys import issue_key
from tenants.models import Tenant
from tenants.scope import tenant_scope


class Command(BaseCommand):
    help = "Issue an API key for a tenant and print it (shown once; only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, metavar="SLUG")
        parser.add_argument("--name", default="CLI key")
        parser.add_argument("--read-only", action="store_true", help="the key can only read")

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant with the slug {options['tenant']!r}")
        with tenant_scope(tenant):
            _, text = issue_key(tenant, options["name"], read_only=options["read_only"])
        self.stdout.write(text)
