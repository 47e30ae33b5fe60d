"""Template context of every dashboard page: the member, the tenant switcher, the quota banner."""

from django.conf import settings

from dashboard.access import memberships_of
from webhooks.quotas import usage


def dashboard(request):
    member = getattr(request, "member", None)
    if member is None or not request.user.is_authenticated:
        return {"signup_enabled": settings.BILLINGWATCH_SIGNUP_ENABLED}
    return {
        "member": member,
        "tenant": member.tenant,
        "switcher": memberships_of(request.user),
        "quota": usage(member.tenant),
    }
