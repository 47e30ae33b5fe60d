from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from anomalies import metrics
from api.schema import errors
from api.serializers.metrics import (
    ChargeSuccessMetricsSerializer,
    DisputesRefundsMetricsSerializer,
    MetricsQuerySerializer,
    RevenueMetricsSerializer,
)
from api.views.base import TenantScopedMixin


class MetricsViewSet(TenantScopedMixin, viewsets.ViewSet):
    """Billing metrics for a range of the tenant's local days (at most 92)."""

    def _span(self, request):
        params = MetricsQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        span = metrics.day_range(self.tenant, data["start"], data["end"])
        envelope = {"start": span.first, "end": span.last, "timezone": span.zone.key, "livemode": data["livemode"]}
        return span, data["livemode"], envelope

    @extend_schema(summary="Daily revenue per currency with the revenue_drop baseline",
                   parameters=[MetricsQuerySerializer], responses={200: RevenueMetricsSerializer, **errors()})
    @action(detail=False, methods=["get"])
    def revenue(self, request, **kwargs):
        span, livemode, envelope = self._span(request)
        series = metrics.revenue_by_day(self.tenant, span, livemode)
        currencies = [{"currency": c, "days": days} for c, days in series.items()]
        return Response(RevenueMetricsSerializer({**envelope, "currencies": currencies}).data)

    @extend_schema(summary="Charge success rate per UTC hour (hours with charges only)",
                   parameters=[MetricsQuerySerializer], responses={200: ChargeSuccessMetricsSerializer, **errors()})
    @action(detail=False, methods=["get"], url_path="charge-success")
    def charge_success(self, request, **kwargs):
        span, livemode, envelope = self._span(request)
        hours = metrics.charge_success_by_hour(self.tenant, span, livemode)
        return Response(ChargeSuccessMetricsSerializer({**envelope, "hours": hours}).data)

    @extend_schema(summary="Disputes and refunds per day and currency",
                   parameters=[MetricsQuerySerializer], responses={200: DisputesRefundsMetricsSerializer, **errors()})
    @action(detail=False, methods=["get"], url_path="disputes-refunds")
    def disputes_refunds(self, request, **kwargs):
        span, livemode, envelope = self._span(request)
        series = metrics.disputes_and_refunds_by_day(self.tenant, span, livemode)
        currencies = [{"currency": c, "days": days} for c, days in series.items()]
        return Response(DisputesRefundsMetricsSerializer({**envelope, "currencies": currencies}).data)
