from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from tenants.admin_base import (
    ActionsOnlyAdminMixin,
    ReadOnlyAdminMixin,
    TenantOwnedAdmin,
    TenantOwnedInline,
    pretty_json,
)
from tenants.scope import tenant_scope
from tenants.models import Tenant
from webhooks.admin_pagination import EstimatedCountPaginator
from webhooks.endpoint_tokens import rotate_endpoint_token
from webhooks.replay import ReplayError, reprocess_event, reprocess_failed
from webhooks.models import (
    PeriodicJob,
    RateLimitBucket,
    SigningSecret,
    StripeEvent,
    WebhookEndpoint,
    WebhookRejection,
    WorkerHeartbeat,
)


class SigningSecretForm(forms.ModelForm):
    """Write-only: the secret is typed in once and never shown again."""

    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="whsec_… from the Stripe dashboard. Leave empty to keep the current secret.",
    )

    class Meta:
        model = SigningSecret
        fields = ["secret", "expires_at"]

    def clean_secret(self):
        value = self.cleaned_data.get("secret", "")
        if not value:
            if not self.instance.pk:
                raise forms.ValidationError("Enter the signing secret.")
            return self.instance.secret
        return value


class SigningSecretInline(TenantOwnedInline):
    model = SigningSecret
    form = SigningSecretForm
    fields = ["secret", "fingerprint", "expires_at", "created_at"]
    readonly_fields = ["fingerprint", "created_at"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantOwnedAdmin):
    list_display = ["tenant", "label", "enabled", "last_received_at", "created_at"]
    list_filter = ["enabled", "tenant"]
    search_fields = ["tenant__slug", "label", "token"]
    readonly_fields = ["token", "path", "last_received_at", "created_at"]
    fields = ["tenant", "label", "enabled", "token", "path", "last_received_at", "created_at"]
    inlines = [SigningSecretInline]
    actions = ["rotate_url_token"]

    @admin.action(description="Rotate the URL token of selected endpoints (the old URLs stop working)")
    def rotate_url_token(self, request, queryset):
        """A confirmation page first (like delete): the old URL stops working at once."""
        endpoints = list(queryset.select_related("tenant"))
        if request.POST.get("confirmed") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Rotate webhook URL tokens?",
                "endpoints": endpoints,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "action": "rotate_url_token",
            }
            return TemplateResponse(request, "admin/webhooks/rotate_token_confirmation.html", context)
        for endpoint in endpoints:
            with tenant_scope(endpoint.tenant):
                new_path = rotate_endpoint_token(endpoint)
            self.message_user(
                request,
                f"{endpoint.tenant.slug} / {endpoint.label or endpoint.pk}: new URL path {new_path} — "
                "paste it into the Stripe dashboard now; the old URL answers 404.",
                messages.WARNING,
            )
        return None


@admin.register(SigningSecret)
class SigningSecretAdmin(TenantOwnedAdmin):
    form = SigningSecretForm
    list_display = ["fingerprint", "tenant", "endpoint", "expires_at", "created_at"]
    list_filter = ["tenant"]
    fields = ["endpoint", "secret", "expires_at"]

    def get_form(self, request, obj=None, **kwargs):
        kwargs["fields"] = ["endpoint", "secret", "expires_at"]
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        obj.tenant = obj.endpoint.tenant
        super().save_model(request, obj, form, change)


class EventTypeFilter(admin.SimpleListFilter):
    """The event types the detectors read, from the registry: listing the table's own
    distinct types would scan millions of rows on every changelist view."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        from anomalies.registry import subscribed_event_types

        return [(t, t) for t in sorted(subscribed_event_types())]

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


class StripeEventAdmin(ActionsOnlyAdminMixin, TenantOwnedAdmin):
    list_display = ["stripe_id", "type", "tenant", "livemode", "created", "source", "status", "attempts"]
    list_filter = ["status", EventTypeFilter, "source", "livemode", ("created", admin.DateFieldListFilter), "tenant"]
    list_select_related = ["tenant"]
    # Exact lookups (not "=", which is iexact): they use the tenant-first indexes.
    search_fields = ["stripe_id__exact", "customer_id__exact", "object_id__exact"]
    search_help_text = (
        "An exact Stripe event, customer or object id. Choose a tenant first on large instances: "
        "a search across all tenants reads the whole table."
    )
    # No date_hierarchy: its drill-down lists the table's distinct dates (a full scan).
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    exclude = ["payload"]
    readonly_fields = [f.name for f in StripeEvent._meta.fields if f.name != "payload"] + ["payload_pretty"]
    actions = ["reprocess_selected", "reprocess_all_failed_of_tenants"]

    @admin.display(description="payload")
    def payload_pretty(self, obj):
        return pretty_json(obj.payload)


    @admin.action(description="Reprocess selected failed events")
    def reprocess_selected(self, request, queryset):
        moved, refused = 0, 0
        for event in queryset.select_related("tenant"):
            with tenant_scope(event.tenant):
                try:
                    reprocess_event(event)
                    moved += 1
                except ReplayError:
                    refused += 1
        self.message_user(request, f"Queued {moved} failed event(s) again."
                          + (f" {refused} skipped: only failed events can be reprocessed." if refused else ""),
                          messages.SUCCESS if moved else messages.WARNING)

    @admin.action(description="Reprocess ALL failed events of the selected events' tenants")
    def reprocess_all_failed_of_tenants(self, request, queryset):
        tenants = Tenant.objects.filter(pk__in=queryset.values("tenant_id")).order_by("slug")
        counts = {tenant.slug: reprocess_failed(tenant) for tenant in tenants}
        self.message_user(request, "Queued again: " + ", ".join(f"{slug} {n}" for slug, n in counts.items()),
                          messages.SUCCESS)


admin.site.register(StripeEvent, StripeEventAdmin)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["identity", "started_at", "last_beat_at", "events_processed"]


@admin.register(PeriodicJob)
class PeriodicJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "last_run_at", "next_run_at", "last_result"]


@admin.register(WebhookRejection)
class WebhookRejectionAdmin(ReadOnlyAdminMixin, TenantOwnedAdmin):
    list_display = ["hour", "tenant", "endpoint", "reason", "count"]
    list_filter = ["reason", "tenant"]
    date_hierarchy = "hour"



@admin.register(RateLimitBucket)
class RateLimitBucketAdmin(ReadOnlyAdminMixin, TenantOwnedAdmin):
    """The database rate limiter's buckets (empty when Redis holds them)."""

    list_display = ["tenant", "tokens", "last_allowed"]

