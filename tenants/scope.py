"""The tenant scope: which tenant the current code is working for.

`tenant_scope(tenant)` is the only way to set it. Every tenant-owned model's
default manager reads it and refuses to run without it (see tenants.managers),
so forgetting to scope a query fails loudly instead of leaking another
tenant's rows. Entry points set the scope exactly once: the dashboard
middleware, the API authentication, the worker per claimed event, and
`--tenant` for commands.
"""

from __future__ import annotations

import contextvars
from contextlib import ContextDecorator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenants.models import Tenant

_current_tenant: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar(
    "billingwatch_current_tenant", default=None
)


class TenantScopeError(RuntimeError):
    """A tenant-owned table was touched without, or outside, the right scope."""


class tenant_scope(ContextDecorator):
    """Run a block (or a function, as a decorator) on behalf of one tenant.

    Scopes nest: the inner one wins and the outer one is restored on exit.
    """

    def __init__(self, tenant: Tenant):
        if tenant is None or getattr(tenant, "pk", None) is None:
            raise TenantScopeError("tenant_scope() needs a saved tenant; there is no scope without one")
        self.tenant = tenant
        self._tokens: list[contextvars.Token] = []

    def __enter__(self) -> Tenant:
        self._tokens.append(_current_tenant.set(self.tenant))
        return self.tenant

    def __exit__(self, *exc) -> None:
        _current_tenant.reset(self._tokens.pop())


def current_tenant_or_none() -> Tenant | None:
    return _current_tenant.get()


def current_tenant() -> Tenant:
    tenant = _current_tenant.get()
    if tenant is None:
        raise TenantScopeError(
            "No tenant scope is active. Wrap the code in tenant_scope(tenant), "
            "or use the explicit `all_tenants` manager in operator code."
        )
    return tenant
