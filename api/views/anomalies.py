from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from anomalies.lifecycle import change_status
from anomalies.models import Anomaly
from api.filters import AnomalyFilter
from api.pagination import AnomalyCursor
from api.schema import errors
from api.serializers.anomalies import (
    AnomalySerializer,
    FalsePositiveSerializer,
    SnoozeSerializer,
    TransitionSerializer,
)
from api.views.base import TenantScopedMixin


def _transition(action_name: str, request_serializer, summary: str):
    """A POST action calling lifecycle.change_status (the same function the dashboard and admin use)."""

    def handler(self, request, **kwargs):
        anomaly = self.get_object()
        params = request_serializer(data=request.data)
        params.is_valid(raise_exception=True)
        anomaly = change_status(
            anomaly, action_name, actor=request.access.user, actor_label=request.access.actor_label,
            **params.validated_data,
        )
        return Response(AnomalySerializer(anomaly).data)

    handler.__name__ = action_name
    schema = extend_schema(summary=summary, request=request_serializer,
                           responses={200: AnomalySerializer, **errors(409, write=True)})
    return schema(action(detail=True, methods=["post"], url_path=action_name)(handler))


@extend_schema_view(
    list=extend_schema(summary="List anomalies, newest first", responses={200: AnomalySerializer, **errors()}),
    retrieve=extend_schema(summary="One anomaly", responses={200: AnomalySerializer, **errors()}),
)
class AnomalyViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Anomaly.all_tenants.none()  # for the schema only; get_queryset() is scoped
    serializer_class = AnomalySerializer
    filterset_class = AnomalyFilter
    pagination_class = AnomalyCursor
    lookup_field = "public_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return Anomaly.objects.filter(tenant=self.tenant)

    acknowledge = _transition("acknowledge", TransitionSerializer, "Acknowledge: someone is on it")
    resolve = _transition("resolve", TransitionSerializer, "Resolve: fixed")
    snooze = _transition("snooze", SnoozeSerializer, "Snooze until a time")
    false_positive = _transition("false_positive", FalsePositiveSerializer, "Mark a false positive (with a reason)")
    reopen = _transition("reopen", TransitionSerializer, "Reopen")
