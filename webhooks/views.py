from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from webhooks.ingest import receive_webhook


@csrf_exempt
@require_POST
def stripe_webhook(request, token: str):
    # Read at most one byte past the limit: enough to know it is too large
    # without buffering whatever a client decides to send.
    body = request.read(settings.BILLINGWATCH_WEBHOOK_MAX_BYTES + 1)
    result = receive_webhook(token, body, request.headers.get("Stripe-Signature"))
    return JsonResponse(result.body, status=result.status, headers=result.headers)
