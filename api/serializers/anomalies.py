from rest_framework import serializers

from anomalies.models import Anomaly


class AnomalySerializer(serializers.ModelSerializer):
    """The Anomaly JSON of DESIGN.md (stable interface: these fields, these names)."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    evidence = serializers.DictField(read_only=True, help_text="Detector metrics and `event_ids` (Stripe event ids).")

    class Meta:
        model = Anomaly
        fields = (
            "id", "detector", "severity", "status", "title", "summary", "customer_id", "livemode",
            "first_seen_at", "last_seen_at", "occurrences", "evidence",
        )
        read_only_fields = fields


class TransitionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class SnoozeSerializer(TransitionSerializer):
    until = serializers.DateTimeField(help_text="When the anomaly opens again (must be in the future).")


class FalsePositiveSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why this is not a real problem.")
