"""Admin plumbing for tenant-owned models: the operators' unscoped zone.

The admin is staff-only and spans all tenants, so it reads through the
explicit `all_tenants` manager, and writes inside the scope of the row's own
tenant (the scoped models refuse writes without one).
"""

import json

from django.contrib import admin
from django.utils.html import format_html

from tenants.managers import TenantOwnedModel
from tenants.scope import tenant_scope


def pretty_json(value) -> str:
    return format_html(
        '<pre style="white-space:pre-wrap;max-height:40em;overflow:auto">{}</pre>',
        json.dumps(value, indent=2, sort_keys=True),
    )


class TenantOwnedAdminMixin:
    def get_queryset(self, request):
        queryset = self.model.all_tenants.get_queryset()
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if issubclass(related, TenantOwnedModel) and "queryset" not in kwargs:
            kwargs["queryset"] = related.all_tenants.all()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        with tenant_scope(obj.tenant):
            super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        with tenant_scope(form.instance.tenant if hasattr(form.instance, "tenant") else form.instance):
            super().save_formset(request, form, formset, change)

    def delete_model(self, request, obj):
        with tenant_scope(obj.tenant):
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset.select_related("tenant"):
            self.delete_model(request, obj)


class TenantOwnedAdmin(TenantOwnedAdminMixin, admin.ModelAdmin):
    list_select_related = ["tenant"]


class TenantOwnedInline(TenantOwnedAdminMixin, admin.TabularInline):
    extra = 0
