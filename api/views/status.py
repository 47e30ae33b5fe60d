from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from api.schema import errors
from api.serializers.status import StatusSerializer
from api.views.base import TenantAPIView
from webhooks.status import queue_status


class StatusView(TenantAPIView):
    @extend_schema(summary="The tenant's event queue", responses={200: StatusSerializer, **errors()})
    def get(self, request, **kwargs):
        return Response(StatusSerializer(queue_status(self.tenant)).data)
