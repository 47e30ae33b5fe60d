"""The events explorer: filters, payloads, processing status and errors, reprocess for failed events."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from api.filters import EventFilter
from dashboard.access import tenant_page
from dashboard.querystring import non_empty
from webhooks.models import StripeEvent
from webhooks.replay import ReplayError, reprocess_event

PAGE_SIZE = 50


def filtered_events(request):
    """The tenant's events in the current mode, filtered by the query string, newest received first."""
    base = StripeEvent.objects.filter(tenant=request.member.tenant, livemode=request.member.livemode)
    filterset = EventFilter(non_empty(request.GET), queryset=base)
    # The filterset's multiple-choice filters add DISTINCT; filtering by its ids instead keeps one plain query.
    rows = base.filter(pk__in=filterset.qs.values("pk")) if filterset.is_valid() else base.none()
    return filterset, rows.order_by("-received_at", "-id")


@tenant_page
def event_list(request):
    filterset, rows = filtered_events(request)
    try:
        page = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        page = 1
    # No COUNT(*): a tenant may have millions of events. One row more tells whether a next page exists.
    start = (page - 1) * PAGE_SIZE
    events = list(rows.defer("payload", "detector_errors")[start:start + PAGE_SIZE + 1])
    return render(request, "dashboard/events.html", {
        "filterset": filterset,
        "events": events[:PAGE_SIZE],
        "page_number": page,
        "has_next": len(events) > PAGE_SIZE,
        "statuses": StripeEvent.Status.choices,
        "sources": StripeEvent.Source.choices,
        "selected_status": filterset.data.getlist("status"),
    })


def _event(request, stripe_id) -> StripeEvent:
    return get_object_or_404(StripeEvent.objects.filter(tenant=request.member.tenant), stripe_id=stripe_id)


@tenant_page
def event_detail(request, stripe_id):
    return render(request, "dashboard/event_detail.html", {"event": _event(request, stripe_id)})


@tenant_page
@require_POST
def reprocess(request, stripe_id):
    event = _event(request, stripe_id)
    try:
        reprocess_event(event)
    except ReplayError as exc:
        messages.error(request, f"Not reprocessed: {exc.message}.")
    else:
        messages.success(request, f"{event.stripe_id} is queued again; a worker will process it shortly.")
    return redirect("dashboard:event", tenant_slug=request.member.tenant.slug, stripe_id=event.stripe_id)
