"""Anomaly triage: the list (filters, severity then recency, pages, bulk actions) and the detail page.

Every status change goes through anomalies.lifecycle.change_status, as in the API and the admin.
"""

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from anomalies.lifecycle import ACTIONS, LifecycleError, change_status
from anomalies.models import SEVERITY_RANK, Anomaly, AnomalyStatus, Severity
from anomalies.registry import load_detectors
from api.filters import AnomalyFilter
from dashboard import charts
from dashboard.access import tenant_page
from dashboard.querystring import non_empty
from webhooks.models import StripeEvent

PAGE_SIZE = 25
BULK_ACTIONS = ("acknowledge", "resolve")
SEVERITY_ORDER = Case(*[When(severity=s, then=Value(r)) for s, r in SEVERITY_RANK.items()],
                      default=Value(0), output_field=IntegerField())


def filtered_anomalies(request):
    """The tenant's anomalies in the current mode, filtered by the query string, most severe then newest first."""
    base = Anomaly.objects.filter(tenant=request.member.tenant, livemode=request.member.livemode)
    params = non_empty(request.GET)
    status = params.get("status", "")
    if status == "":  # the default view: what needs attention
        params.setlist("status", [AnomalyStatus.OPEN, AnomalyStatus.ACKNOWLEDGED])
    elif status == "any":
        params.pop("status")
    filterset = AnomalyFilter(params, queryset=base)
    # The filterset's multiple-choice filters add DISTINCT; filtering by its ids instead keeps one plain query.
    rows = base.filter(pk__in=filterset.qs.values("pk")) if filterset.is_valid() else base.none()
    return filterset, rows.annotate(rank=SEVERITY_ORDER).order_by("-rank", "-last_seen_at", "-id")


@tenant_page
def anomaly_list(request):
    filterset, rows = filtered_anomalies(request)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "dashboard/anomalies.html", {
        "filterset": filterset,
        "page": page,
        "statuses": AnomalyStatus.choices,
        "severities": Severity.choices,
        "detectors": sorted(load_detectors()),
        "status_value": request.GET.get("status", ""),
        "selected_severity": filterset.data.getlist("severity"),
        "bulk_actions": BULK_ACTIONS,
    })


@tenant_page
@require_POST
def bulk_action(request):
    action = request.POST.get("action")
    back = reverse("dashboard:anomalies", kwargs={"tenant_slug": request.member.tenant.slug})
    back += "?" + request.POST.get("query", "") if request.POST.get("query") else ""
    if action not in BULK_ACTIONS:
        messages.error(request, "Choose acknowledge or resolve.")
        return redirect(back)
    ids = request.POST.getlist("ids")
    anomalies = list(Anomaly.objects.filter(tenant=request.member.tenant, public_id__in=_uuids(ids)))
    if not anomalies:
        messages.error(request, "Select at least one anomaly.")
        return redirect(back)
    done, skipped = 0, 0
    for anomaly in anomalies:
        try:
            change_status(anomaly, action, actor=request.user)
            done += 1
        except LifecycleError:
            skipped += 1
    verb = "acknowledged" if action == "acknowledge" else "resolved"
    messages.success(request, f"{done} {'anomaly' if done == 1 else 'anomalies'} {verb}."
                     + (f" {skipped} skipped (already {verb} or not in a state that allows it)." if skipped else ""))
    return redirect(back)


def _uuids(values):
    result = []
    for value in values:
        try:
            result.append(uuid.UUID(value))
        except ValueError:
            continue
    return result


def _anomaly(request, public_id) -> Anomaly:
    return get_object_or_404(Anomaly.objects.filter(tenant=request.member.tenant), public_id=public_id)


def panel_context(request, anomaly, error=None, values=None) -> dict:
    return {
        "anomaly": anomaly,
        "history": list(anomaly.status_changes.order_by("-at", "-id")),
        "error": error,
        "values": values or {},
        "zone": request.member.tenant.timezone,
    }


def detail_context(request, anomaly, **panel) -> dict:
    event_ids = list(anomaly.evidence.get("event_ids", []))
    events = list(StripeEvent.objects.filter(tenant=request.member.tenant, stripe_id__in=event_ids).order_by("created"))
    found = {e.stripe_id for e in events}
    return {
        **panel_context(request, anomaly, **panel),
        "events": events,
        "missing_events": [e for e in event_ids if e not in found],
        "metrics": {k: v for k, v in anomaly.evidence.items() if k != "event_ids"},
        "chart": charts.evidence_chart(events),
    }


@tenant_page
def anomaly_detail(request, public_id):
    return render(request, "dashboard/anomaly_detail.html", detail_context(request, _anomaly(request, public_id)))


def _until(raw: str, zone: str) -> datetime | None:
    """A datetime-local input (the tenant's time zone) or an ISO time; None when empty or unreadable."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone or "UTC"))


@tenant_page
@require_POST
def anomaly_action(request, public_id, action):
    if action not in ACTIONS:
        raise Http404("No such action")
    anomaly = _anomaly(request, public_id)
    reason = request.POST.get("reason", "")
    raw_until = request.POST.get("until", "")
    until = _until(raw_until, request.member.tenant.timezone)
    try:
        if action == "snooze" and raw_until and until is None:
            raise LifecycleError("invalid", "'until' is not a date and time", "until")
        anomaly = change_status(anomaly, action, actor=request.user, until=until, reason=reason)
    except LifecycleError as exc:
        values = {"action": action, "reason": reason, "until": raw_until}
        if request.htmx_request:
            context = panel_context(request, anomaly, error=exc.message, values=values)
            return render(request, "dashboard/_anomaly_panel.html", context, status=400)
        context = detail_context(request, anomaly, error=exc.message, values=values)
        return render(request, "dashboard/anomaly_detail.html", context, status=400)
    if not request.htmx_request:
        messages.success(request, f"Anomaly {anomaly.get_status_display().lower()}.")
        return redirect("dashboard:anomaly", tenant_slug=request.member.tenant.slug, public_id=anomaly.public_id)
    return render(request, "dashboard/_anomaly_panel.html", panel_context(request, anomaly))
