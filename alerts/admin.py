from django.contrib import admin, messages
from django.utils.html import format_html

from alerts import channels, dispatch
from alerts.models import AlertChannel, AlertDelivery
from tenants.admin_base import ActionsOnlyAdminMixin, TenantOwnedAdmin, pretty_json
from tenants.models import Tenant
from tenants.scope import tenant_scope


@admin.action(description="Send a test alert")
def send_test_alert(modeladmin, request, queryset):
    for channel in queryset.select_related("tenant"):
        with tenant_scope(channel.tenant):
            result = channels.send_test(channel.public_id)
        level = messages.SUCCESS if result.ok else messages.ERROR
        modeladmin.message_user(request, f"{channel.tenant} · {channel.name}: {result.message}", level)


@admin.action(description="Retry selected deliveries (failed or pending: due now)")
def retry_selected_deliveries(modeladmin, request, queryset):
    by_tenant = {}
    for tenant, public_id in queryset.values_list("tenant_id", "public_id"):
        by_tenant.setdefault(tenant, []).append(public_id)
    tenants = {t.pk: t for t in Tenant.objects.filter(pk__in=by_tenant)}
    queued = 0
    for tenant_id, public_ids in by_tenant.items():
        with tenant_scope(tenants[tenant_id]):
            queued += dispatch.retry_deliveries(public_ids)
    left = sum(len(ids) for ids in by_tenant.values()) - queued
    note = f" ({left} left alone: sent, skipped, sending now, or a test message)" if left else ""
    modeladmin.message_user(request, f"{queued} deliveries queued to be sent now{note}.", messages.SUCCESS)


class NeedsAttentionFilter(admin.SimpleListFilter):
    """The shortcut of the operator console: what has not gone out yet."""

    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("failed_or_pending", "Failed or pending")]

    def queryset(self, request, queryset):
        if self.value() == "failed_or_pending":
            return queryset.filter(status__in=dispatch.RETRYABLE)
        return queryset


@admin.register(AlertChannel)
class AlertChannelAdmin(TenantOwnedAdmin):
    list_display = ["name", "tenant", "kind", "enabled", "health", "min_severity", "digest", "last_sent_at"]
    list_filter = ["kind", "enabled", "digest", "tenant"]
    search_fields = ["name", "=public_id"]
    actions = [send_test_alert]
    readonly_fields = [
        "public_id",
        "signing_secret",
        "last_sent_at",
        "last_error",
        "last_error_at",
        "consecutive_failures",
        "auto_disabled_at",
        "next_digest_at",
    ]

    @admin.display(description="health")
    def health(self, obj):
        if obj.auto_disabled:
            return format_html('<span style="color:#b91c1c">turned off after repeated failures: {}</span>', obj.last_error[:120])
        if obj.last_error:
            return format_html('<span style="color:#b45309">last error: {}</span>', obj.last_error[:120])
        return "ok"

    def save_model(self, request, obj, form, change):
        if change and "enabled" in form.changed_data and obj.enabled:
            obj.consecutive_failures, obj.auto_disabled_at = 0, None
        if "digest" in form.changed_data:
            obj.next_digest_at = None
        with tenant_scope(obj.tenant):
            channels.schedule_digest(obj)
        super().save_model(request, obj, form, change)


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ActionsOnlyAdminMixin, TenantOwnedAdmin):
    """The delivery log: read-only."""

    list_display = ["created_at", "tenant", "channel", "kind", "status", "attempts", "response_status", "next_attempt_at", "short_error"]
    list_filter = [NeedsAttentionFilter, "status", "kind", "channel__kind", "tenant"]
    actions = [retry_selected_deliveries]
    list_select_related = ["tenant", "channel"]
    search_fields = ["=public_id", "=anomaly__public_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    exclude = ["payload"]
    readonly_fields = [f.name for f in AlertDelivery._meta.fields if f.name != "payload"] + ["payload_pretty"]

    @admin.display(description="error")
    def short_error(self, obj):
        return obj.error[:100]

    @admin.display(description="payload")
    def payload_pretty(self, obj):
        return pretty_json(obj.payload)

