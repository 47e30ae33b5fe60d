"""Who may see which tenant's dashboard, and the tenant scope around every /t/<slug>/ request.

`tenant_page` is the one door: login required; the slug must name an active
tenant the user is a member of (else 404, exactly as for a tenant that does not
exist); unsafe methods (POST…) need a role that may write (viewers get 403 and
nothing runs). The view *and its template rendering* run inside
`tenant_scope(tenant)`, so every scoped manager works and nothing leaks.

Live/test mode is a per-tenant preference kept in the session; `?mode=live` or
`?mode=test` on any page switches it (a view preference, not a data change).
"""

from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404

from tenants.models import Membership, Tenant
from tenants.scope import tenant_scope

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MODES = {"live": True, "test": False}


@dataclass(frozen=True)
class Member:
    """The current user's standing in the current tenant (request.member)."""

    tenant: Tenant
    membership: Membership
    livemode: bool

    @property
    def role(self) -> str:
        return self.membership.role

    @property
    def can_write(self) -> bool:
        return self.role in (Membership.Role.OWNER, Membership.Role.ADMIN)

    @property
    def is_owner(self) -> bool:
        return self.role == Membership.Role.OWNER

    @property
    def mode(self) -> str:
        return "live" if self.livemode else "test"


def find_membership(user, slug: str) -> Membership | None:
    """The user's membership of the active tenant with this slug (unscoped on purpose: it selects the scope)."""
    return (
        Membership.all_tenants.select_related("tenant")
        .filter(user=user, tenant__slug=slug, tenant__is_active=True)
        .first()
    )


def memberships_of(user) -> list[Membership]:
    """Every active tenant the user belongs to, for the switcher (unscoped: it spans tenants by design)."""
    return list(
        Membership.all_tenants.select_related("tenant")
        .filter(user=user, tenant__is_active=True)
        .order_by("tenant__name")
    )


def _livemode(request, tenant: Tenant) -> bool:
    key = f"bw_mode:{tenant.pk}"
    wanted = request.GET.get("mode")
    if wanted in MODES:
        request.session[key] = wanted
    return MODES.get(request.session.get(key, "live"), True)


def tenant_page(view):
    """Decorator for every view under /t/<tenant_slug>/ (see the module docstring)."""

    @wraps(view)
    def wrapper(request, tenant_slug: str, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership = find_membership(request.user, tenant_slug)
        if membership is None:
            raise Http404("No such tenant")
        tenant = membership.tenant
        request.member = Member(tenant, membership, _livemode(request, tenant))
        request.htmx_request = request.headers.get("HX-Request") == "true"
        if request.method not in SAFE_METHODS and not request.member.can_write:
            raise PermissionDenied("Viewers have read-only access")
        with tenant_scope(tenant):
            response = view(request, *args, **kwargs)
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
        return response

    return wrapper


def owner_only(request) -> None:
    if not request.member.is_owner:
        raise PermissionDenied("Only owners may do this")
