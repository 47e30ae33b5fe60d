from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from api.schema import errors
from api.serializers.endpoints import (
    EndpointSerializer,
    ExpireSecretSerializer,
    NewSecretSerializer,
    SigningSecretSerializer,
)
from api.views.base import TenantScopedMixin
from webhooks.models import WebhookEndpoint
from webhooks.signing_secrets import add_signing_secret, expire_signing_secret, find_secret, rejection_counts


@extend_schema_view(
    list=extend_schema(summary="Webhook endpoints: URL, secrets (never their value), refused deliveries",
                       responses={200: EndpointSerializer(many=True), **errors()}),
    retrieve=extend_schema(summary="One webhook endpoint", responses={200: EndpointSerializer, **errors()}),
)
class EndpointViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = WebhookEndpoint.all_tenants.none()  # for the schema only; get_queryset() is scoped
    serializer_class = EndpointSerializer
    lookup_field = "token"
    lookup_url_kwarg = "id"
    pagination_class = None

    def get_queryset(self):
        return (
            WebhookEndpoint.objects.filter(tenant=self.tenant)
            .prefetch_related("signing_secrets")
            .order_by("created_at", "id")
        )

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "rejections": getattr(self, "_rejections", {})}

    def list(self, request, *args, **kwargs):
        endpoints = list(self.get_queryset())
        self._rejections = rejection_counts(endpoints)
        return Response(self.get_serializer(endpoints, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        endpoint = self.get_object()
        self._rejections = rejection_counts([endpoint])
        return Response(self.get_serializer(endpoint).data)

    @extend_schema(summary="Add a signing secret (e.g. while rotating); it is never shown again",
                   request=NewSecretSerializer, responses={201: SigningSecretSerializer, **errors(409, write=True)})
    @action(detail=True, methods=["post"])
    def secrets(self, request, **kwargs):
        endpoint = self.get_object()
        params = NewSecretSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        secret = add_signing_secret(endpoint, **params.validated_data)
        return Response(SigningSecretSerializer(secret).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Expire a signing secret now or at a time", request=ExpireSecretSerializer,
                   responses={200: SigningSecretSerializer, **errors(write=True)})
    @action(detail=True, methods=["post"], url_path=r"secrets/(?P<secret_id>[0-9a-f]{10})/expire")
    def expire_secret(self, request, secret_id=None, **kwargs):
        endpoint = self.get_object()
        params = ExpireSecretSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        secret = find_secret(endpoint, secret_id)
        if secret is None:
            raise NotFound()
        return Response(SigningSecretSerializer(expire_signing_secret(secret, params.validated_data.get("at"))).data)
