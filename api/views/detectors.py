from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from anomalies.config import describe_detectors, update_detector
from anomalies.dry_run import preview_backtest
from api.schema import errors
from api.serializers.detectors import (
    BacktestRequestSerializer,
    BacktestSerializer,
    DetectorSerializer,
    DetectorUpdateSerializer,
)
from api.views.base import TenantScopedMixin


class DetectorViewSet(TenantScopedMixin, viewsets.ViewSet):
    lookup_field = "name"
    lookup_value_regex = "[a-z_]+"

    def _describe(self, name: str):
        found = next((d for d in describe_detectors(self.tenant) if d.name == name), None)
        if found is None:
            raise NotFound()
        return found

    @extend_schema(summary="Every detector with its settings and threshold schema",
                   responses={200: DetectorSerializer(many=True), **errors()})
    def list(self, request, **kwargs):
        return Response(DetectorSerializer(describe_detectors(self.tenant), many=True).data)

    @extend_schema(summary="One detector", responses={200: DetectorSerializer, **errors()})
    def retrieve(self, request, name=None, **kwargs):
        return Response(DetectorSerializer(self._describe(name)).data)

    @extend_schema(
        summary="Turn a detector on or off, change thresholds (validated against its schema)",
        request=DetectorUpdateSerializer, responses={200: DetectorSerializer, **errors(write=True)},
        examples=[OpenApiExample("thresholds", value={"thresholds": {"drop": 0.2}}, request_only=True)],
    )
    def partial_update(self, request, name=None, **kwargs):
        params = DetectorUpdateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        self._describe(name)
        update_detector(self.tenant, name, **params.validated_data)
        return Response(DetectorSerializer(self._describe(name)).data)

    @extend_schema(
        summary="Backtest: what the periodic rules would raise over the last N days (changes nothing)",
        request=BacktestRequestSerializer, responses={200: BacktestSerializer, **errors(write=True)},
        examples=[OpenApiExample("try a threshold", request_only=True,
                                 value={"days": 30, "detector": "revenue_drop", "thresholds": {"drop": 0.1}})],
    )
    @action(detail=False, methods=["post"])
    def backtest(self, request, **kwargs):
        params = BacktestRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        preview = preview_backtest(self.tenant, **params.validated_data)
        return Response(BacktestSerializer(preview).data)
