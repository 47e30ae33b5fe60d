"""OpenAPI (drf-spectacular): the Bearer scheme, error responses, and which paths are documented.

The session door (/api/v1/t/<slug>/…) mirrors the Bearer paths exactly, so
the schema documents only the Bearer paths (docs/api.md explains both).
"""

from drf_spectacular.contrib import django_filters as django_filters_contrib
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from anomalies.models import AnomalyStatus
from api.serializers.errors import ErrorSerializer
from webhooks.models import StripeEvent

# Named enums for the schema (SPECTACULAR_SETTINGS['ENUM_NAME_OVERRIDES']).
ANOMALY_STATUS = AnomalyStatus.choices
EVENT_STATUS = StripeEvent.Status.choices

ERROR_EXAMPLES = {
    400: ("invalid", "Some fields are invalid.", {"until": "This field is required."}),
    401: ("authentication_failed", "Invalid or revoked API key.", {}),
    403: ("read_only", "This API key is read-only.", {}),
    404: ("not_found", "Not found.", {}),
    409: ("invalid_transition", "cannot acknowledge an anomaly that is resolved", {}),
    429: ("throttled", "Request was throttled. Expected available in 42 seconds.", {}),
}
DESCRIPTIONS = {
    400: "Invalid input; `fields` names each bad field.",
    401: "No, a malformed, a wrong or a revoked API key (with `WWW-Authenticate: Bearer`).",
    403: "A read-only key (or a viewer) tried to write.",
    404: "No such object for this tenant (another tenant's id looks exactly the same).",
    409: "The object's state does not allow this.",
    429: "Over the key's rate limit; see `Retry-After`.",
}


def error_response(status: int) -> OpenApiResponse:
    code, message, fields = ERROR_EXAMPLES[status]
    return OpenApiResponse(
        response=ErrorSerializer,
        description=DESCRIPTIONS[status],
        examples=[OpenApiExample(code, value={"error": {"code": code, "message": message, "fields": fields}},
                                 status_codes=[str(status)], response_only=True)],
    )


def errors(*extra: int, write: bool = False) -> dict[int, OpenApiResponse]:
    """The error responses of an operation: 400, 401, 404, 429 always, 403 for writes, plus `extra`."""
    codes = {400, 401, 404, 429, *extra} | ({403} if write else set())
    return {code: error_response(code) for code in sorted(codes)}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "bw_<prefix>_<secret>",
                "description": "An API key: `Authorization: Bearer bw_…`. `create_tenant` prints one."}


def only_bearer_paths(endpoints, **kwargs):
    """PREPROCESSING_HOOKS: leave the session mirror (/api/v1/t/<slug>/…) out of the schema."""
    return [e for e in endpoints if e[0].startswith("/api/v1/") and not e[0].startswith("/api/v1/t/")]


class TenantFilterExtension(DjangoFilterExtension):
    """django-filter parameters for the schema, built on `all_tenants.none()`: the default manager
    of tenant-owned models refuses to run without a tenant scope, and schema generation has none."""

    target_class = "api.filters.TenantFilterBackend"
    priority = 1

    def get_schema_operation_parameters(self, auto_schema, *args, **kwargs):
        original = django_filters_contrib.get_manager
        django_filters_contrib.get_manager = lambda model: getattr(model, "all_tenants", None) or original(model)
        try:
            return super().get_schema_operation_parameters(auto_schema, *args, **kwargs)
        finally:
            django_filters_contrib.get_manager = original
