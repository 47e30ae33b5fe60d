from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from api.filters import EventFilter
from api.pagination import EventCursor
from api.schema import errors
from api.serializers.events import EventDetailSerializer, EventSerializer
from api.views.base import TenantScopedMixin
from webhooks.models import StripeEvent
from webhooks.replay import reprocess_event


@extend_schema_view(
    list=extend_schema(summary="List stored Stripe events, newest received first",
                       responses={200: EventSerializer, **errors()}),
    retrieve=extend_schema(summary="One event with its payload", responses={200: EventDetailSerializer, **errors()}),
)
class EventViewSet(TenantScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = StripeEvent.all_tenants.none()  # for the schema only; get_queryset() is scoped
    filterset_class = EventFilter
    pagination_class = EventCursor
    lookup_field = "stripe_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        events = StripeEvent.objects.filter(tenant=self.tenant)
        return events.defer("payload", "detector_errors") if self.action == "list" else events

    def get_serializer_class(self):
        return EventSerializer if self.action == "list" else EventDetailSerializer

    @extend_schema(summary="Reprocess a failed event (it is queued again)", request=None,
                   responses={200: EventDetailSerializer, **errors(409, write=True)})
    @action(detail=True, methods=["post"])
    def reprocess(self, request, **kwargs):
        event = reprocess_event(self.get_object())
        return Response(EventDetailSerializer(event).data)
