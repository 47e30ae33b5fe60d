import django_filters
from django_filters.rest_framework import DjangoFilterBackend

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
