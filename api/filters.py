import django_filters
from django_filters.rest_framework import DjangoFilterBackend

from alerts.models import AlertDelivery, DeliveryStatus, NoticeKind
from anomalies.models import Anomaly, AnomalyStatus, Severity
from webhooks.models import StripeEvent


class TenantFilterBackend(DjangoFilterBackend):
    """django-filter's backend; its own class so the schema extension (api.schema) can match it."""


class AnomalyFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=AnomalyStatus.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    detector = django_filters.CharFilter(max_length=40)
    customer_id = django_filters.CharFilter(max_length=255)
    livemode = django_filters.BooleanFilter()
    first_seen_after = django_filters.IsoDateTimeFilter(field_name="first_seen_at", lookup_expr="gte")
    first_seen_before = django_filters.IsoDateTimeFilter(field_name="first_seen_at", lookup_expr="lt")

    class Meta:
        model = Anomaly
        fields = ()


class EventFilter(django_filters.FilterSet):
    type = django_filters.CharFilter(max_length=100)
    status = django_filters.MultipleChoiceFilter(choices=StripeEvent.Status.choices)
    customer_id = django_filters.CharFilter(max_length=255)
    object_id = django_filters.CharFilter(max_length=255)
    source = django_filters.ChoiceFilter(choices=StripeEvent.Source.choices)
    livemode = django_filters.BooleanFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt")

    class Meta:
        model = StripeEvent
        fields = ()


class ChannelDeliveryFilter(django_filters.FilterSet):
    """A channel's delivery log (GET /channels/{id}/deliveries/)."""

    status = django_filters.MultipleChoiceFilter(choices=DeliveryStatus.choices)
    kind = django_filters.MultipleChoiceFilter(choices=NoticeKind.choices)

    class Meta:
        model = AlertDelivery
        fields = ()


class DeliveryFilter(ChannelDeliveryFilter):
    channel = django_filters.UUIDFilter(field_name="channel__public_id", help_text="A channel's id.")
    anomaly = django_filters.UUIDFilter(field_name="anomaly__public_id", help_text="An anomaly's id.")

    class Meta(ChannelDeliveryFilter.Meta):
        pass
