from django.contrib import admin

from tenants.admin_base import TenantOwnedAdmin, TenantOwnedInline
from tenants.models import ApiKey, Membership, Tenant
from webhooks.models import WebhookEndpoint


class MembershipInline(TenantOwnedInline):
    model = Membership
    autocomplete_fields = ["user"]


class ApiKeyInline(TenantOwnedInline):
    model = ApiKey
    fields = ["name", "prefix", "read_only", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued by create_tenant / the dashboard, which show the secret once


class WebhookEndpointInline(TenantOwnedInline):
    model = WebhookEndpoint
    fields = ["label", "token", "enabled", "last_received_at"]
    readonly_fields = ["token", "last_received_at"]
    show_change_link = True


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "plan", "is_active", "created_at"]
    list_filter = ["plan", "is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [WebhookEndpointInline, MembershipInline, ApiKeyInline]

    def save_formset(self, request, form, formset, change):
        from tenants.scope import tenant_scope

        with tenant_scope(form.instance):
            super().save_formset(request, form, formset, change)


@admin.register(Membership)
class MembershipAdmin(TenantOwnedAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__slug"]
    autocomplete_fields = ["user"]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantOwnedAdmin):
    list_display = ["name", "tenant", "prefix", "read_only", "last_used_at", "revoked_at"]
    list_filter = ["read_only", "tenant"]
    search_fields = ["name", "prefix", "tenant__slug"]
    readonly_fields = ["tenant", "prefix", "created_at", "last_used_at"]
    fields = ["tenant", "name", "prefix", "read_only", "created_at", "last_used_at", "revoked_at"]

    def has_add_permission(self, request):
        return False  # issued where the secret can be shown once: create_tenant, the dashboard, the API
