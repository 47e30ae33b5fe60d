"""Turning a tenant's account off and on (operators, from the admin).

A disabled tenant's webhooks answer 403 and store nothing, its periodic scans
stop, and its users and API keys lose access; what was stored stays, and
events already queued are still processed. Stripe retries a refused delivery
for three days, so enabling the tenant again within that time loses nothing.
"""

from tenants.models import Tenant


def set_tenant_active(tenant: Tenant, active: bool) -> bool:
    """Enable or disable `tenant`; returns whether anything changed."""
    if tenant.is_active == active:
        return False
    tenant.is_active = active
    # save() (not a queryset update) so the webhook endpoint cache of this process
    # is cleared at once; other web processes follow within ENDPOINT_CACHE_SECONDS.
    tenant.save(update_fields=["is_active"])
    return True
