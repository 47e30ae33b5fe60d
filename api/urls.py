"""/api/v1/… (API key) and /api/v1/t/<slug>/… (dashboard session): the same views behind two doors.

Resources register on one router (the alerts app's channels and deliveries too).
"""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from api.errors import not_found
from api.views.anomalies import AnomalyViewSet
from api.views.channels import ChannelViewSet, DeliveryViewSet
from api.views.detectors import DetectorViewSet
from api.views.endpoints import EndpointViewSet
from api.views.events import EventViewSet
from api.views.keys import ApiKeyViewSet
from api.views.metrics import MetricsViewSet
from api.views.status import StatusView

router = SimpleRouter()
router.register("anomalies", AnomalyViewSet, basename="anomaly")
router.register("events", EventViewSet, basename="event")
router.register("detectors", DetectorViewSet, basename="detector")
router.register("metrics", MetricsViewSet, basename="metrics")
router.register("endpoints", EndpointViewSet, basename="endpoint")
router.register("keys", ApiKeyViewSet, basename="key")
router.register("channels", ChannelViewSet, basename="channel")
router.register("deliveries", DeliveryViewSet, basename="delivery")

resources = [
    path("status/", StatusView.as_view(), name="status"),
    *router.urls,
]

urlpatterns = [
    path("v1/", include((resources, "api"), namespace="v1")),
    path("v1/t/<slug:tenant_slug>/", include((resources, "api"), namespace="v1-session")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^", not_found),
]
