"""One error body for every 4xx: {"error": {"code", "message", "fields"}}.

Domain errors (lifecycle, thresholds, replay, secrets, ranges, channels and
Django validation errors of the domain functions) are turned
into API errors here, so views just call the domain function. DRF's own
handler still sets WWW-Authenticate (401) and Retry-After (429).
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from alerts.channels import ChannelNotFound, NotSigned
from anomalies.config import ThresholdError, UnknownDetector
from anomalies.lifecycle import LifecycleError
from anomalies.metrics import MetricsRangeError
from webhooks.replay import ReplayError
from webhooks.signing_secrets import SecretError

NOT_FOUND_MESSAGE = "Not found."


class ApiError(exceptions.APIException):
    def __init__(self, status_code: int, code: str, message: str, fields: dict | None = None):
        super().__init__(message, code)
        self.status_code, self.code, self.message, self.fields = status_code, code, message, fields or {}


def field_error(code: str, message: str, field: str | None) -> ApiError:
    """A bad input: 400 naming the field, or 409 when the request is fine but the state forbids it."""
    if field:
        return ApiError(status.HTTP_400_BAD_REQUEST, code, message, {field: message})
    return ApiError(status.HTTP_409_CONFLICT, code, message)


def translate(exc: Exception) -> Exception:
    """Domain exceptions → API errors; anything else passes through."""
    if isinstance(exc, LifecycleError | SecretError):
        return field_error(exc.code, exc.message, exc.field)
    if isinstance(exc, ReplayError):
        return field_error(exc.code, exc.message, None)
    if isinstance(exc, MetricsRangeError):
        return field_error("invalid", exc.message, exc.field)
    if isinstance(exc, ThresholdError):
        fields = {f"thresholds.{k}" if k != "thresholds" else k: v for k, v in exc.fields.items()}
        return ApiError(status.HTTP_400_BAD_REQUEST, "invalid", "Some thresholds are invalid.", fields)
    if isinstance(exc, UnknownDetector | ChannelNotFound):
        return exceptions.NotFound(NOT_FOUND_MESSAGE)
    if isinstance(exc, NotSigned):
        return field_error(exc.code, exc.message, None)
    if isinstance(exc, DjangoValidationError):
        # Model and domain validation (e.g. alerts.channels, alerts.config): one message per field.
        if hasattr(exc, "error_dict"):
            fields = {name: " ".join(messages) for name, messages in exc.message_dict.items()}
        else:
            fields = {"non_field_errors": " ".join(exc.messages)}
        fields = {"non_field_errors" if k == "__all__" else k: v for k, v in fields.items()}
        return ApiError(status.HTTP_400_BAD_REQUEST, "invalid", "Some fields are invalid.", fields)
    return exc


def flatten(detail, prefix: str = "") -> dict[str, str]:
    """DRF's nested validation detail → {"field.sub": "message"}."""
    if isinstance(detail, dict):
        out = {}
        for key, value in detail.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {prefix or "non_field_errors": " ".join(str(item) for item in detail)}
        out = {}
        for index, item in enumerate(detail):
            out.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return {prefix or "non_field_errors": str(detail)}


def body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def exception_handler(exc, context):
    exc = translate(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ApiError):
        response.data = body(exc.code, exc.message, exc.fields)
    elif isinstance(exc, exceptions.ValidationError):
        response.data = body("invalid", "Some fields are invalid.", flatten(exc.detail))
    elif response.status_code == status.HTTP_404_NOT_FOUND:
        response.data = body("not_found", NOT_FOUND_MESSAGE)
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
        detail = getattr(exc, "detail", str(exc))
        response.data = body(code, str(detail))
    return response


def not_found(request, *args, **kwargs):
    """Any other URL under /api/: the same body as every 404."""
    return JsonResponse(body("not_found", NOT_FOUND_MESSAGE), status=404)
