"""Detectors: descriptions, on/off, thresholds (validated by anomalies.config), and a 30-day preview that changes nothing."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from anomalies.config import ThresholdError, UnknownDetector, describe_detectors, update_detector
from anomalies.dry_run import preview_backtest
from anomalies.registry import scanning_detectors
from dashboard.access import tenant_page

PREVIEW_DAYS = 30


def _number(raw: str):
    """A form value as a number when it reads as one; otherwise as typed, for the detector's own message."""
    raw = raw.strip()
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            continue
    return raw


def _submitted_thresholds(request, view) -> dict:
    return {t["name"]: _number(request.POST.get(t["name"], "")) for t in view.schema if t["name"] in request.POST}


def _posted(request, name):
    """(every detector's view, this one's, the thresholds posted for it); 404 for an unknown name."""
    views = describe_detectors(request.member.tenant)
    found = next((v for v in views if v.name == name), None)
    if found is None:
        raise Http404("No such detector")
    return views, found, _submitted_thresholds(request, found)


def _page(request, views, **extra):
    scanning = {d.name for d in scanning_detectors()}
    return render(request, "dashboard/detectors.html", {"detectors": views, "scanning": scanning, **extra},
                  status=400 if extra.get("errors") else 200)


@tenant_page
def detector_list(request):
    return _page(request, describe_detectors(request.member.tenant))


@tenant_page
@require_POST
def detector_update(request, name):
    tenant = request.member.tenant
    views, view, thresholds = _posted(request, name)
    try:
        update_detector(tenant, name, enabled=request.POST.get("enabled") == "on", thresholds=thresholds)
    except (ThresholdError, UnknownDetector) as exc:
        errors = getattr(exc, "fields", {"thresholds": str(exc)})
        return _page(request, views, errors=errors, failed=name,
                     values={k: request.POST.get(k, "") for k in thresholds})
    messages.success(request, f"{view.title}: settings saved.")
    return redirect(reverse("dashboard:detectors", kwargs={"tenant_slug": tenant.slug}) + f"#{name}")


@tenant_page
@require_POST
def detector_preview(request, name):
    _, view, thresholds = _posted(request, name)
    try:
        preview = preview_backtest(request.member.tenant, PREVIEW_DAYS, detector=name, thresholds=thresholds or None)
    except ThresholdError as exc:
        return render(request, "dashboard/_preview.html",
                      {"detector": view, "errors": exc.fields, "days": PREVIEW_DAYS}, status=400)
    livemode = request.member.livemode
    return render(request, "dashboard/_preview.html", {
        "detector": view, "days": PREVIEW_DAYS, "preview": preview,
        "opened": [a for a in preview.opened if a.livemode == livemode],
        "updated": [a for a in preview.updated if a.livemode == livemode],
        "recovered": [a for a in preview.recovered if a.livemode == livemode],
    })
