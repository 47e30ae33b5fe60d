"""Alert channels: list, add and edit per kind, send a test, delete, the delivery log (alerts.channels does the work)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from alerts.channels import ChannelNotFound, create_channel, delete_channel, get_channel, send_test, update_channel
from alerts.models import AlertChannel, AlertDelivery, ChannelKind, DeliveryStatus
from dashboard.access import tenant_page
from dashboard.channel_forms import CONFIG_FIELD, ChannelForm

LOG_PAGE_SIZE = 50


def _channel(public_id):
    try:
        return get_channel(public_id)
    except ChannelNotFound:
        raise Http404("No such channel") from None


def _back(request):
    return redirect("dashboard:alerts", tenant_slug=request.member.tenant.slug)


@tenant_page
def channel_list(request):
    channels = AlertChannel.objects.filter(tenant=request.member.tenant).annotate(
        failed=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
        sent=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.SENT)),
    ).order_by("name")
    return render(request, "dashboard/alerts.html", {"channels": channels, "kinds": ChannelKind.choices})


def _form_page(request, form, channel=None, status=200):
    return render(request, "dashboard/alert_form.html", {
        "form": form, "channel": channel, "kind_label": ChannelKind(form.kind).label,
    }, status=status)


@tenant_page
def channel_new(request):
    kind = request.GET.get("kind") or request.POST.get("kind")
    if kind not in CONFIG_FIELD:
        raise Http404("Choose a channel kind")
    if request.method != "POST":
        return _form_page(request, ChannelForm(kind, initial={"enabled": True}))
    form = ChannelForm(kind, request.POST)
    if form.is_valid():
        try:
            channel = create_channel(kind=kind, **form.channel_data())
        except ValidationError as exc:
            form.add_domain_errors(exc)
        else:
            messages.success(request, f"Channel {channel.name} added. Send a test to check it works.")
            return _back(request)
    return _form_page(request, form, status=400)


@tenant_page
def channel_edit(request, public_id):
    channel = _channel(public_id)
    if request.method != "POST":
        return _form_page(request, ChannelForm(channel.kind, initial=ChannelForm.initial_for(channel)), channel)
    form = ChannelForm(channel.kind, request.POST)
    if form.is_valid():
        try:
            update_channel(public_id, **form.channel_data())
        except ValidationError as exc:
            form.add_domain_errors(exc)
        else:
            messages.success(request, f"Channel {form.cleaned_data['name']} saved.")
            return _back(request)
    return _form_page(request, form, channel, status=400)


@tenant_page
@require_POST
def channel_test(request, public_id):
    _channel(public_id)
    result = send_test(public_id)
    (messages.success if result.ok else messages.error)(request, result.message)
    return _back(request)


@tenant_page
@require_POST
def channel_delete(request, public_id):
    channel = _channel(public_id)
    delete_channel(public_id)
    messages.success(request, f"Channel {channel.name} deleted.")
    return _back(request)


@tenant_page
def channel_log(request, public_id):
    channel = _channel(public_id)
    deliveries = AlertDelivery.objects.filter(tenant=request.member.tenant, channel=channel).select_related(
        "anomaly").defer("payload", "anomaly__evidence").order_by("-created_at", "-id")
    page = Paginator(deliveries, LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "dashboard/alert_log.html", {"channel": channel, "page": page})
