from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.html import format_html

from alerts.models import AlertChannel
from tenants.accounts import set_tenant_active
from tenants.admin_base import ReadOnlyAdminMixin, ScopedChangeFormMixin, TenantOwnedAdmin, TenantOwnedInline
from tenants.models import ApiKey, Membership, MonthlyUsage, Plan, Tenant
from tenants.scope import tenant_scope
from webhooks.models import WebhookEndpoint


SEVERITIES = ("critical", "high", "medium", "low")


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


class AlertChannelInline(TenantOwnedInline):
    """The tenant's alert channels at a glance; edit and test them on the channel's own page."""

    model = AlertChannel
    fields = ["name", "kind", "enabled", "min_severity", "last_sent_at", "last_error"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False


class WebhookEndpointInline(TenantOwnedInline):
    model = WebhookEndpoint
    fields = ["label", "token", "enabled", "last_received_at"]
    readonly_fields = ["token", "last_received_at"]
    show_change_link = True


def _count(queryset) -> Subquery:
    """A per-tenant COUNT as a subquery: one changelist query however many tenants are listed."""
    counted = queryset.filter(tenant=OuterRef("pk")).order_by().values("tenant").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "monthly_event_quota", "retention_days", "tenant_count"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(tenant_count=Count("tenants"))

    @admin.display(description="tenants", ordering="tenant_count")
    def tenant_count(self, plan):
        return plan.tenant_count


@admin.register(Tenant)
class TenantAdmin(ScopedChangeFormMixin, admin.ModelAdmin):
    list_display = [
        "name", "slug", "plan", "is_active", "events_this_month", "last_event_received",
        "open_anomalies", "backlog", "created_at",
    ]
    list_filter = ["plan", "is_active"]
    list_select_related = ["plan"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [WebhookEndpointInline, MembershipInline, ApiKeyInline, AlertChannelInline]
    actions = ["disable_tenants", "enable_tenants"]

    def get_queryset(self, request):
        from anomalies.models import ACTIVE_STATUSES, Anomaly
        from webhooks.models import StripeEvent

        month = timezone.now().date().replace(day=1)
        usage = MonthlyUsage.all_tenants.filter(tenant=OuterRef("pk"), month=month)
        active = Anomaly.all_tenants.filter(status__in=ACTIVE_STATUSES)
        return (
            super().get_queryset(request)
            .annotate(
                processed_this_month=Coalesce(Subquery(usage.values("processed")[:1]), 0),
                held_this_month=Coalesce(Subquery(usage.values("held")[:1]), 0),
                # Any source (an import too), newest first on the (tenant, received_at) index.
                last_received=Subquery(
                    StripeEvent.all_tenants.filter(tenant=OuterRef("pk")).order_by("-received_at")
                    .values("received_at")[:1]
                ),
                # Queue rows only: the partial queue index holds just these, however big the table.
                queued=_count(StripeEvent.all_tenants.filter(available_at__isnull=False)),
                failed=_count(StripeEvent.all_tenants.filter(status=StripeEvent.Status.FAILED, available_at=None)),
                **{f"open_{severity}": _count(active.filter(severity=severity)) for severity in SEVERITIES},
            )
        )

    @admin.display(description="events this month / quota", ordering="processed_this_month")
    def events_this_month(self, tenant):
        quota = tenant.plan.monthly_event_quota if tenant.plan else None
        text = f"{tenant.processed_this_month:,} / {quota:,}" if quota is not None else f"{tenant.processed_this_month:,}"
        if tenant.held_this_month:
            return format_html('{} <strong style="color:#ba2121">(+{} held: over quota)</strong>', text,
                               f"{tenant.held_this_month:,}")
        return text

    @admin.display(description="last event received", ordering="last_received")
    def last_event_received(self, tenant):
        return tenant.last_received or "never"

    @admin.display(description="open anomalies")
    def open_anomalies(self, tenant):
        counts = [(severity, getattr(tenant, f"open_{severity}")) for severity in SEVERITIES]
        return ", ".join(f"{n} {severity}" for severity, n in counts if n) or "none"

    @admin.display(description="backlog (queued / failed)")
    def backlog(self, tenant):
        return f"{tenant.queued} / {tenant.failed}"

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

    def save_model(self, request, obj, form, change):
        if change and "plan" in form.changed_data:
            from webhooks.quotas import change_plan

            released = change_plan(obj, obj.plan)  # saves; queues held events if the plan now has room
            if released:
                self.message_user(request, f"{released} events held over quota are queued again.", messages.SUCCESS)
        super().save_model(request, obj, form, change)

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
    actions = ["revoke_keys"]

    @admin.action(description="Revoke selected API keys (they stop working at once)")
    def revoke_keys(self, request, queryset):
        from tenants.keys import revoke_key

        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True).select_related("tenant"):
            with tenant_scope(key.tenant):
                revoke_key(key)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)

    def has_add_permission(self, request):
        return False  # issued where the secret can be shown once: create_tenant, the dashboard, the API


@admin.register(MonthlyUsage)
class MonthlyUsageAdmin(ReadOnlyAdminMixin, TenantOwnedAdmin):
    list_display = ["tenant", "month", "processed", "held"]
    list_filter = ["month", "tenant"]

