"""Alert channels and the delivery log: thin views over alerts.channels (the dashboard's and admin's functions)."""

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from alerts import channels
from alerts.models import AlertChannel, AlertDelivery, ChannelKind
from api.filters import ChannelDeliveryFilter, DeliveryFilter
from api.pagination import DeliveryCursor
from api.schema import errors
from api.serializers.channels import (
    ChannelSerializer,
    ChannelWithSecretSerializer,
    ChannelWriteSerializer,
    DeliverySerializer,
    TestResultSerializer,
)
from api.views.base import TenantScopedMixin

CREATE_EXAMPLES = [
    OpenApiExample("signed webhook", request_only=True,
                   value={"name": "Ops webhook", "kind": "webhook", "config": {"url": "https://ops.example.com/bw"},
                          "min_severity": "high"}),
    OpenApiExample("e-mail with a daily digest", request_only=True,
                   value={"name": "Finance", "kind": "email", "config": {"to": ["finance@example.com"]},
                          "digest": "daily"}),
    OpenApiExample("pagerduty", request_only=True,
                   value={"name": "On call", "kind": "pagerduty",
                          "config": {"routing_key": "R0UT1NGKEY0123456789abcdefABCDEF"}, "min_severity": "critical"}),
]
INVALID_CONFIG = OpenApiExample(
    "invalid config", status_codes=["400"], response_only=True,
    value={"error": {"code": "invalid", "message": "Some fields are invalid.",
                     "fields": {"config": "'url' must start with https://"}}},
)


def _revealing(channel: AlertChannel, had_secret: bool) -> AlertChannel:
    """Show the signing secret in this response when this request created it."""
    if channel.kind == ChannelKind.WEBHOOK and channel.signing_secret and not had_secret:
        channel.revealed_secret = channel.signing_secret
    return channel


def _with(error_responses: dict, example: OpenApiExample) -> dict:
    bad = error_responses[400]
    return {**error_responses, 400: type(bad)(bad.response, bad.description, [*bad.examples, example])}


@extend_schema_view(
    list=extend_schema(summary="Alert channels of the tenant (credentials masked)",
                       responses={200: ChannelSerializer(many=True), **errors()}),
    retrieve=extend_schema(summary="One alert channel (credentials masked)",
                           responses={200: ChannelSerializer, **errors()}),
)
class ChannelViewSet(TenantScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = AlertChannel.all_tenants.none()  # for the schema only; get_queryset() is scoped
    serializer_class = ChannelSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    pagination_class = None  # a handful per tenant; the delivery log action pages with DeliveryCursor
    filterset_class = None  # the delivery log action filters with ChannelDeliveryFilter

    def get_queryset(self):
        return AlertChannel.objects.filter(tenant=self.tenant).order_by("name", "id")

    def get_object(self):
        return channels.get_channel(self.kwargs["id"])  # ChannelNotFound → 404 (api.errors)

    def retrieve(self, request, **kwargs):
        return Response(ChannelSerializer(self.get_object()).data)

    @extend_schema(summary="Create a channel; a webhook channel's signing secret is in this response only",
                   request=ChannelWriteSerializer, examples=CREATE_EXAMPLES,
                   responses={201: ChannelWithSecretSerializer, **_with(errors(write=True), INVALID_CONFIG)})
    def create(self, request, **kwargs):
        params = ChannelWriteSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        channel = channels.create_channel(**params.validated_data)
        return Response(ChannelWithSecretSerializer(_revealing(channel, False)).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a channel: only the fields sent (send `config` whole, never the masked one)",
                   request=ChannelWriteSerializer(partial=True),
                   examples=[OpenApiExample("turn off", request_only=True, value={"enabled": False}),
                             OpenApiExample("quiet hours", request_only=True,
                                            value={"quiet_start": "22:00", "quiet_end": "07:00"})],
                   responses={200: ChannelWithSecretSerializer, **_with(errors(write=True), INVALID_CONFIG)})
    def partial_update(self, request, **kwargs):
        had_secret = bool(self.get_object().signing_secret)
        params = ChannelWriteSerializer(data=request.data, partial=True)
        params.is_valid(raise_exception=True)
        channel = channels.update_channel(self.kwargs["id"], **params.validated_data)
        return Response(ChannelWithSecretSerializer(_revealing(channel, had_secret)).data)

    @extend_schema(summary="Delete a channel and its delivery log", request=None,
                   responses={204: None, **errors(write=True)})
    def destroy(self, request, **kwargs):
        channels.delete_channel(self.kwargs["id"])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Send a test alert now and say what happened (also when the channel is off; logged as a delivery)",
        request=None, responses={200: TestResultSerializer, **errors(write=True)},
        examples=[OpenApiExample("sent", response_only=True,
                                 value={"ok": True, "message": "Test alert sent to Ops webhook (status 200).",
                                        "status": 200}),
                  OpenApiExample("refused", response_only=True,
                                 value={"ok": False, "status": 404, "message": "Test alert failed (permanent): "
                                        "the receiver answered 404"})],
    )
    @action(detail=True, methods=["post"])
    def test(self, request, **kwargs):
        result = channels.send_test(self.kwargs["id"])
        return Response(TestResultSerializer(result).data)

    @extend_schema(summary="Rotate a webhook channel's signing secret: the new one is in this response only, "
                           "the old one stops at once",
                   request=None, responses={200: ChannelWithSecretSerializer, **errors(409, write=True)})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, **kwargs):
        channel = channels.rotate_signing_secret(self.kwargs["id"])
        channel.revealed_secret = channel.signing_secret
        return Response(ChannelWithSecretSerializer(channel).data)

    @extend_schema(summary="The channel's delivery log, newest first", responses={200: DeliverySerializer(many=True),
                                                                               **errors()})
    @action(detail=True, methods=["get"], filterset_class=ChannelDeliveryFilter, pagination_class=DeliveryCursor,
            queryset=AlertDelivery.all_tenants.none())  # the schema's model for this action
    def deliveries(self, request, **kwargs):
        channel = self.get_object()
        rows = self.filter_queryset(
            AlertDelivery.objects.filter(tenant=self.tenant, channel=channel).select_related("channel", "anomaly")
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)


@extend_schema_view(
    list=extend_schema(summary="The delivery log of every channel, newest first",
                       responses={200: DeliverySerializer, **errors()}),
    retrieve=extend_schema(summary="One delivery", responses={200: DeliverySerializer, **errors()}),
)
class DeliveryViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = AlertDelivery.all_tenants.none()  # for the schema only; get_queryset() is scoped
    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilter
    pagination_class = DeliveryCursor
    lookup_field = "public_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return AlertDelivery.objects.filter(tenant=self.tenant).select_related("channel", "anomaly")
