from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from tenants.accounts import set_tenant_active
from tenants.admin_base import ScopedChangeFormMixin, TenantOwnedAdmin, TenantOwnedInline
from tenants.models import ApiKey, Membership, Tenant
from tenants.scope import tenant_scope
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
class TenantAdmin(ScopedChangeFormMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "plan", "is_active", "created_at"]
    list_filter = ["plan", "is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [WebhookEndpointInline, MembershipInline, ApiKeyInline]
    actions = ["disable_tenants", "enable_tenants"]

    @admin.action(description="Disable selected tenants (webhooks answer 403, nothing is stored)")
    def disable_tenants(self, request, queryset):
        self._set_active(request, queryset, active=False)

    @admin.action(description="Enable selected tenants")
    def enable_tenants(self, request, queryset):
        self._set_active(request, queryset, active=True)

    def _set_active(self, request, queryset, active: bool):
        changed = [tenant.slug for tenant in queryset if set_tenant_active(tenant, active)]
        verb = "Enabled" if active else "Disabled"
        if changed:
            note = "" if active else " Stripe retries refused deliveries for three days: enable again within that time to lose nothing."
            self.message_user(request, f"{verb} {len(changed)} tenant(s): {', '.join(changed)}.{note}", messages.SUCCESS)
        else:
            self.message_user(request, f"Nothing to do: the selected tenants were already {verb.lower()}.", messages.INFO)

    def tenant_for_object(self, object_id):
        try:
            return Tenant.objects.filter(pk=object_id).first()
        except (ValueError, ValidationError):
            return None

    def save_formset(self, request, form, formset, change):
        for inline_form in formset.forms:
            if inline_form.instance.tenant_id is None:
                inline_form.instance.tenant = form.instance
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
