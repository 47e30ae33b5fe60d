"""Webhook setup: the URL for Stripe, the signing secrets (write-only), delivery counts, a signed test event."""

from datetime import timedelta

from django.contrib import messages
from django.db import transaction
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from anomalies.registry import subscribed_event_types
from dashboard.access import tenant_page
from webhooks.models import StripeEvent, WebhookEndpoint
from webhooks.signing_secrets import (
    SecretError,
    add_signing_secret,
    expire_signing_secret,
    find_secret,
    rejection_counts,
)
from webhooks.test_event import NoActiveSecret, send_test_event

# How long the secrets in use keep verifying after a new one is added (a rotation overlaps).
ROTATION_CHOICES = (("", "Keeps working"), ("1", "1 hour"), ("24", "24 hours"), ("72", "3 days"), ("0", "Now"))


def setup_context(request, errors=None, values=None) -> dict:
    tenant = request.member.tenant
    now = timezone.now()
    endpoints = list(
        WebhookEndpoint.objects.filter(tenant=tenant).prefetch_related("signing_secrets").order_by("created_at", "id")
    )
    rejected = rejection_counts(endpoints, days=1, now=now)
    accepted = dict(
        StripeEvent.objects.filter(tenant=tenant, endpoint__in=endpoints, received_at__gte=now - timedelta(hours=24),
                                   source=StripeEvent.Source.WEBHOOK)
        .values_list("endpoint_id").annotate(n=Count("id")).order_by()
    )
    rows = []
    for endpoint in endpoints:
        secrets = sorted(endpoint.signing_secrets.all(), key=lambda s: s.created_at, reverse=True)
        rows.append({
            "endpoint": endpoint,
            "url": request.build_absolute_uri(endpoint.path),
            "secrets": [{"s": s, "active": s.is_active(now)} for s in secrets],
            "has_active_secret": any(s.is_active(now) for s in secrets),
            "accepted": accepted.get(endpoint.pk, 0),
            "rejected": sorted(rejected[endpoint.pk].items(), key=lambda kv: -kv[1]),
            "rejected_total": sum(rejected[endpoint.pk].values()),
        })
    return {
        "endpoints": rows,
        "event_types": sorted(subscribed_event_types()),
        "rotation_choices": ROTATION_CHOICES,
        "errors": errors or {},
        "values": values or {},
    }


@tenant_page
def webhook_setup(request):
    return render(request, "dashboard/webhooks.html", setup_context(request))


def _endpoint(request, token):
    return get_object_or_404(WebhookEndpoint.objects.filter(tenant=request.member.tenant), token=token)


@tenant_page
@require_POST
def add_secret(request, token):
    endpoint = _endpoint(request, token)
    secret = request.POST.get("secret", "").strip()
    rotate = request.POST.get("expire_current", "")
    if rotate not in dict(ROTATION_CHOICES):
        rotate = ""
    now = timezone.now()
    current = [s for s in endpoint.signing_secrets.all() if s.is_active(now)]
    try:
        with transaction.atomic():
            added = add_signing_secret(endpoint, secret)
            if rotate:
                for old in current:
                    expire_signing_secret(old, now + timedelta(hours=int(rotate)))
    except SecretError as exc:
        context = setup_context(request, errors={exc.field or "secret": exc.message},
                                values={"expire_current": rotate, "token": token})
        return render(request, "dashboard/webhooks.html", context, status=400)
    note = f" The previous secret stops working {'now' if rotate == '0' else 'in ' + dict(ROTATION_CHOICES)[rotate]}." \
        if rotate and current else ""
    messages.success(request, f"Signing secret …{added.fingerprint} added.{note}")
    return redirect(_back(request), tenant_slug=request.member.tenant.slug)


def _back(request) -> str:
    """The setup guide (overview) posts here too and wants to come back to itself."""
    return "dashboard:overview" if request.POST.get("back") == "overview" else "dashboard:webhooks"


@tenant_page
@require_POST
def expire_secret(request, token, fingerprint):
    endpoint = _endpoint(request, token)
    secret = find_secret(endpoint, fingerprint)
    if secret is None:
        raise Http404("No such secret")
    expire_signing_secret(secret)
    messages.success(request, f"Signing secret …{fingerprint} no longer verifies deliveries.")
    return redirect("dashboard:webhooks", tenant_slug=request.member.tenant.slug)


@tenant_page
@require_POST
def send_test(request, token):
    endpoint = _endpoint(request, token)
    slug = request.member.tenant.slug
    try:
        event, result = send_test_event(endpoint)
    except NoActiveSecret as exc:
        messages.error(request, f"Cannot send a test event: {exc}.")
        return redirect(_back(request), tenant_slug=slug)
    if result.status != 200:
        messages.error(request, f"The test event was refused ({result.status}): {result.body.get('error')}.")
        return redirect(_back(request), tenant_slug=slug)
    messages.success(request, f"Test event {event['id']} was signed, received and queued. It is a test-mode "
                              "event, so the explorer now shows test mode.")
    return redirect(reverse("dashboard:events", kwargs={"tenant_slug": slug}) + "?mode=test")
