"""Admin plumbing for tenant-owned models: the operators' unscoped zone.

The admin is staff-only and spans all tenants, so it reads through the
explicit `all_tenants` manager, and writes inside the scope of the row's own
tenant (the scoped models refuse writes without one).
"""

import json

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from tenants.managers import TenantOwnedModel
from tenants.scope import tenant_scope


def pretty_json(value) -> str:
    return format_html(
        '<pre style="white-space:pre-wrap;max-height:40em;overflow:auto">{}</pre>',
        json.dumps(value, indent=2, sort_keys=True),
    )


class ScopedChangeFormMixin:
    """Run an object's change page inside its tenant's scope.

    Formsets and uniqueness checks query the default (scoped) manager, so an
    object's page is rendered in the scope of the tenant it belongs to. Add
    pages have no tenant yet, so they show no inlines: save first, then add.
    """

    def tenant_for_object(self, object_id):
        raise NotImplementedError

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        tenant = self.tenant_for_object(object_id) if object_id else None
        if tenant is None:
            return super().changeform_view(request, object_id, form_url, extra_context)
        with tenant_scope(tenant):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            if hasattr(response, "render") and not response.is_rendered:
                response.render()  # templates iterate the formsets: still in scope
            return response

    def get_inline_instances(self, request, obj=None):
        return super().get_inline_instances(request, obj) if obj is not None else []


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
        for inline_form in formset.forms:
            if getattr(inline_form.instance, "tenant_id", False) is None:
                inline_form.instance.tenant = form.instance.tenant
        with tenant_scope(form.instance.tenant):
            super().save_formset(request, form, formset, change)

    def delete_model(self, request, obj):
        with tenant_scope(obj.tenant):
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset.select_related("tenant"):
            self.delete_model(request, obj)


class TenantOwnedAdmin(ScopedChangeFormMixin, TenantOwnedAdminMixin, admin.ModelAdmin):
    list_select_related = ["tenant"]

    def tenant_for_object(self, object_id):
        try:
            obj = self.model.all_tenants.select_related("tenant").filter(pk=object_id).first()
        except (ValueError, ValidationError):
            return None
        return obj.tenant if obj else None


class TenantOwnedInline(TenantOwnedAdminMixin, admin.TabularInline):
    extra = 0


class ReadOnlyAdminMixin:
    """Rows the system writes (logs, counters, heartbeats): operators look, never add or edit."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ActionsOnlyAdminMixin(ReadOnlyAdminMixin):
    """Never added or edited by hand, but the changelist's bulk actions (acknowledge, reprocess,
    retry) need change permission on the list itself."""

    def has_change_permission(self, request, obj=None):
        return obj is None
