from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from api.schema import errors
from api.serializers.keys import ApiKeySerializer, NewApiKeySerializer
from api.views.base import TenantScopedMixin
from tenants.keys import issue_key, revoke_key
from tenants.models import ApiKey


@extend_schema_view(
    list=extend_schema(summary="API keys of the tenant (secrets are never shown again)",
                       responses={200: ApiKeySerializer(many=True), **errors()}),
)
class ApiKeyViewSet(TenantScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = ApiKey.all_tenants.none()  # for the schema only; get_queryset() is scoped
    serializer_class = ApiKeySerializer
    lookup_field = "prefix"
    lookup_url_kwarg = "id"
    pagination_class = None

    def get_queryset(self):
        return ApiKey.objects.filter(tenant=self.tenant).order_by("-created_at", "-id")

    @extend_schema(summary="Create a key: the full key is in this response only", request=ApiKeySerializer,
                   responses={201: NewApiKeySerializer, **errors(write=True)})
    def create(self, request, **kwargs):
        params = ApiKeySerializer(data=request.data)
        params.is_valid(raise_exception=True)
        key, text = issue_key(self.tenant, params.validated_data["name"],
                              read_only=params.validated_data.get("read_only", False))
        key.key = text
        return Response(NewApiKeySerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke a key (it stops working at once)", request=None,
                   responses={200: ApiKeySerializer, **errors(write=True)})
    @action(detail=True, methods=["post"])
    def revoke(self, request, **kwargs):
        return Response(ApiKeySerializer(revoke_key(self.get_object())).data)
