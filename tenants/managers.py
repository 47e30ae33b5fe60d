"""The scoped manager that every tenant-owned model uses as its default.

Reads: `get_queryset()` raises TenantScopeError without an active scope and
filters by the current tenant otherwise. Every query method (all, filter, get,
count, exists, aggregate, iterator, raw, update, delete, in_bulk, ...) starts
from `get_queryset()`, so they are all covered.

Writes: `TenantOwnedModel.save()` and `delete()` and the queryset's
`bulk_create`/`bulk_update`/`update` refuse rows of another tenant, and fill
the tenant in when it was left empty.

`all_tenants` is a plain manager: the explicit, greppable door for operator
code (the admin) and the worker's cross-tenant claim queries.
"""

from django.db import models

from tenants.scope import TenantScopeError, current_tenant


def check_tenant_of(obj) -> None:
    """Fill in the row's tenant from the scope, or refuse a foreign one."""
    tenant = current_tenant()
    if obj.tenant_id is None:
        obj.tenant = tenant
    elif obj.tenant_id != tenant.pk:
        raise TenantScopeError(
            f"Refusing to write a {type(obj).__name__} of tenant {obj.tenant_id} "
            f"inside the scope of tenant {tenant.pk}"
        )


class TenantScopedQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for obj in objs:
            check_tenant_of(obj)
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs = list(objs)
        for obj in objs:
            check_tenant_of(obj)
        return super().bulk_update(objs, fields, *args, **kwargs)

    def update(self, **kwargs):
        new_tenant = kwargs.get("tenant", kwargs.get("tenant_id"))
        if new_tenant is not None and getattr(new_tenant, "pk", new_tenant) != current_tenant().pk:
            raise TenantScopeError("Refusing to move rows to another tenant")
        return super().update(**kwargs)


class TenantScopedManager(models.Manager.from_queryset(TenantScopedQuerySet)):
    """Default manager of tenant-owned models: no scope, no query."""

    def get_queryset(self):
        return super().get_queryset().filter(tenant=current_tenant())


class TenantOwnedModel(models.Model):
    """Abstract base for every model with a `tenant` foreign key.

    Subclasses declare `tenant = models.ForeignKey(Tenant, ...)` themselves so
    each can choose its related_name; they inherit the managers and checks.
    """

    objects = TenantScopedManager()
    all_tenants = models.Manager()

    class Meta:
        # Django's own machinery (forward FK access, cascades, refresh) uses
        # the base manager, a plain Manager: unfiltered, as Django requires.
        abstract = True

    def save(self, *args, **kwargs):
        check_tenant_of(self)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        check_tenant_of(self)
        return super().delete(*args, **kwargs)

    # Uniqueness validation (ModelForms, the admin) queries the default
    # manager; a row may always be validated within its own tenant's scope.
    def validate_unique(self, exclude=None):
        with self._own_scope():
            super().validate_unique(exclude=exclude)

    def validate_constraints(self, exclude=None):
        with self._own_scope():
            super().validate_constraints(exclude=exclude)

    def _own_scope(self):
        from tenants.scope import current_tenant_or_none, tenant_scope

        active = current_tenant_or_none()
        if active is not None:
            if self.tenant_id is not None and self.tenant_id != active.pk:
                raise TenantScopeError("Validating a row of another tenant")
            return tenant_scope(active)
        if self.tenant_id is None:
            raise TenantScopeError("Cannot validate a tenant-owned row without a tenant")
        return tenant_scope(self.tenant)
