"""Who is calling and for which tenant: resolved once per request, before any view code runs.

Two doors lead to the same views:
- /api/v1/…            `Authorization: Bearer bw_…`: the API key selects the tenant;
- /api/v1/t/<slug>/…   a logged-in dashboard user (session cookie, CSRF on writes):
                       the slug selects the tenant, and a membership must exist (else 404).
Read-only keys and viewers may only read.
"""

from dataclasses import dataclass

from rest_framework.exceptions import NotFound

from tenants.models import ApiKey, Membership, Tenant


@dataclass(frozen=True)
class Access:
    tenant: Tenant
    can_write: bool
    actor_label: str  # recorded with status changes
    user: object | None = None  # the dashboard user, None for an API key
    api_key: ApiKey | None = None

    @property
    def throttle_key(self) -> str:
        return f"key:{self.api_key.pk}" if self.api_key else f"user:{self.user.pk}:{self.tenant.pk}"


def access_for_key(key: ApiKey) -> Access:
    return Access(
        tenant=key.tenant,
        can_write=not key.read_only,
        actor_label=f"api key {key.name} (bw_{key.prefix})"[:150],
        api_key=key,
    )


def access_for_member(user, slug: str) -> Access:
    """The member's access to the tenant of this slug; NotFound when not a member (as for no such tenant)."""
    membership = (
        Membership.all_tenants.select_related("tenant")
        .filter(user=user, tenant__slug=slug, tenant__is_active=True)
        .first()
    )
    if membership is None:
        raise NotFound()
    return Access(
        tenant=membership.tenant,
        can_write=membership.role != Membership.Role.VIEWER,
        actor_label=user.get_username()[:150],
        user=user,
    )
