from django import forms
from django.contrib import admin, messages

from anomalies import lifecycle
from anomalies.detectors.base import ThresholdError
from anomalies.models import Anomaly, AnomalyOccurrence, AnomalyStatusChange, DetectorConfig
from anomalies.registry import get_detector, load_detectors
from tenants.admin_base import (
    ActionsOnlyAdminMixin,
    ReadOnlyAdminMixin,
    TenantOwnedAdmin,
    TenantOwnedInline,
    pretty_json,
)
from tenants.scope import tenant_scope


class StatusChangeInline(TenantOwnedInline):
    model = AnomalyStatusChange
    fields = ["at", "from_status", "to_status", "actor_label", "reason"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


def _bulk(action: str, label: str):
    @admin.action(description=label)
    def run(modeladmin, request, queryset):
        done = refused = 0
        for anomaly in queryset.select_related("tenant"):
            with tenant_scope(anomaly.tenant):
                try:
                    lifecycle.change_status(anomaly, action, actor=request.user)
                    done += 1
                except lifecycle.LifecycleError:
                    refused += 1
        modeladmin.message_user(request, f"{label}: {done} done, {refused} not applicable.", messages.INFO)

    run.__name__ = f"bulk_{action}"
    return run


@admin.register(Anomaly)
class AnomalyAdmin(ActionsOnlyAdminMixin, TenantOwnedAdmin):
    list_display = ["title", "tenant", "detector", "severity", "status", "livemode", "occurrences", "last_seen_at"]
    list_filter = ["status", "severity", "detector", "livemode", "tenant"]
    search_fields = ["=public_id", "=customer_id", "title"]
    date_hierarchy = "last_seen_at"
    show_full_result_count = False
    actions = [_bulk("acknowledge", "Acknowledge"), _bulk("resolve", "Resolve")]
    exclude = ["evidence"]
    readonly_fields = [f.name for f in Anomaly._meta.fields if f.name != "evidence"] + ["evidence_pretty"]
    inlines = [StatusChangeInline]

    @admin.display(description="evidence")
    def evidence_pretty(self, obj):
        return pretty_json(obj.evidence)



class DetectorConfigForm(forms.ModelForm):
    detector = forms.ChoiceField(choices=[])

    class Meta:
        model = DetectorConfig
        fields = ["tenant", "detector", "enabled", "thresholds"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["detector"].choices = [(name, name) for name in sorted(load_detectors())]

    def clean(self):
        cleaned = super().clean()
        detector = get_detector(cleaned.get("detector", ""))
        if detector is not None:
            try:
                cleaned["thresholds"] = detector.validate_thresholds(cleaned.get("thresholds") or {})
            except ThresholdError as exc:
                self.add_error("thresholds", "; ".join(f"{k}: {v}" for k, v in exc.fields.items()))
        return cleaned


@admin.register(DetectorConfig)
class DetectorConfigAdmin(TenantOwnedAdmin):
    form = DetectorConfigForm
    list_display = ["tenant", "detector", "enabled", "thresholds", "updated_at"]
    list_filter = ["detector", "enabled", "tenant"]


@admin.register(AnomalyStatusChange)
class AnomalyStatusChangeAdmin(ReadOnlyAdminMixin, TenantOwnedAdmin):
    list_display = ["at", "anomaly", "tenant", "from_status", "to_status", "actor_label"]
    list_filter = ["to_status", "tenant"]



@admin.register(AnomalyOccurrence)
class AnomalyOccurrenceAdmin(ReadOnlyAdminMixin, TenantOwnedAdmin):
    list_display = ["occurred_at", "anomaly", "tenant"]

