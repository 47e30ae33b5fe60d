"""Creating a tenant with everything it needs to receive webhooks.

One function used by `manage.py create_tenant`, the demo seeding, the admin
and (later) self-service sign-up.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.text import slugify

from tenants.models import ApiKey, Membership, Tenant
from tenants.scope import tenant_scope
from webhooks.models import SigningSecret, WebhookEndpoint, validate_signing_secret


class OnboardingError(ValueError):
    pass


@dataclass(frozen=True)
class NewTenant:
    tenant: Tenant
    endpoint: WebhookEndpoint
    api_key: str  # shown once, never stored in clear
    owner_created: bool


def create_tenant(
    name: str, *, slug: str | None = None, webhook_secret: str | None = None, owner_email: str | None = None
) -> NewTenant:
    """Validate everything first, then create it all in one transaction."""
    name = name.strip()
    if not name:
        raise OnboardingError("the tenant name must not be empty")
    slug = slug or slugify(name)
    if not slug or slug != slugify(slug):
        raise OnboardingError(f"invalid slug {slug!r}: use lower-case letters, digits and hyphens")
    if webhook_secret is not None:
        try:
            validate_signing_secret(webhook_secret)
        except ValidationError:
            raise OnboardingError(
                "invalid webhook secret: a Stripe signing secret looks like whsec_ followed by letters and digits"
            ) from None
    if owner_email is not None:
        try:
            validate_email(owner_email)
        except ValidationError:
            raise OnboardingError(f"invalid owner e-mail address {owner_email!r}") from None

    with transaction.atomic():
        if Tenant.objects.filter(slug=slug).exists():
            raise OnboardingError(f"a tenant with the slug {slug!r} already exists")
        tenant = Tenant.objects.create(name=name, slug=slug)
        with tenant_scope(tenant):
            endpoint = WebhookEndpoint.objects.create(tenant=tenant)
            if webhook_secret:
                SigningSecret.objects.create(tenant=tenant, endpoint=endpoint, secret=webhook_secret)
            _, api_key = ApiKey.issue(tenant, name="Default key")
            owner_created = False
            if owner_email:
                user_model = get_user_model()
                user = user_model.objects.filter(email__iexact=owner_email).first()
                if user is None:
                    user = user_model.objects.create_user(username=owner_email, email=owner_email)
                    owner_created = True
                Membership.objects.create(tenant=tenant, user=user, role=Membership.Role.OWNER)
    return NewTenant(tenant, endpoint, api_key, owner_created)
