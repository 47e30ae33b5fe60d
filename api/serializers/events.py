from rest_framework import serializers

from webhooks.models import StripeEvent

LIST_FIELDS = (
    "id", "type", "api_version", "livemode", "created", "received_at", "source", "object_type", "object_id",
    "customer_id", "amount", "currency", "status", "attempts", "processed_at", "last_error",
)


class EventSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="stripe_id", read_only=True, help_text="Stripe's event id (evt_…).")
    amount = serializers.IntegerField(read_only=True, allow_null=True, help_text="Minor units, in `currency`.")

    class Meta:
        model = StripeEvent
        fields = LIST_FIELDS
        read_only_fields = fields


class EventDetailSerializer(EventSerializer):
    payload = serializers.JSONField(read_only=True, help_text="The event exactly as Stripe sent it.")
    detector_errors = serializers.JSONField(read_only=True)

    class Meta(EventSerializer.Meta):
        fields = (*LIST_FIELDS, "detector_errors", "payload")
        read_only_fields = fields
