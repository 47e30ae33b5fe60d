import json

from django.core.management.base import BaseCommand, CommandError

from tenants.onboarding import OnboardingError, create_tenant


class Command(BaseCommand):
    help = "Create a tenant with its webhook endpoint and an API key (printed once)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--slug", help="URL name of the tenant (default: from the name)")
        parser.add_argument("--webhook-secret", help="the endpoint's Stripe signing secret, whsec_...")
        parser.add_argument("--owner", metavar="EMAIL", help="make this user (created if needed) the owner")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        try:
            created = create_tenant(
                options["name"],
                slug=options["slug"],
                webhook_secret=options["webhook_secret"],
                owner_email=options["owner"],
            )
        except OnboardingError as exc:
            raise CommandError(str(exc)) from None
        result = {
            "tenant": created.tenant.slug,
            "webhook_path": created.endpoint.path,
            "api_key": created.api_key,
            "webhook_secret_set": bool(options["webhook_secret"]),
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"Created tenant {created.tenant.name!r} ({created.tenant.slug})")
        self.stdout.write(f"Webhook path: {result['webhook_path']}  (register https://<your host>{result['webhook_path']} in Stripe)")
        self.stdout.write(f"API key (shown only now): {result['api_key']}")
        if not result["webhook_secret_set"]:
            self.stdout.write("No signing secret yet: add the endpoint's whsec_... secret in the admin before Stripe sends events.")
        if created.owner_created:
            self.stdout.write(f"Created user {options['owner']} without a password: they set one with 'Forgot password'.")
