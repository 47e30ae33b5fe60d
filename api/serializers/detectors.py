from rest_framework import serializers

from anomalies.dry_run import MAX_DAYS
from api.serializers.anomalies import AnomalySerializer


class ThresholdSchemaSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["integer", "number"])
    default = serializers.FloatField()
    min = serializers.FloatField()
    max = serializers.FloatField()
    help = serializers.CharField()


class DetectorSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    title = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    enabled = serializers.BooleanField(read_only=True)
    thresholds = serializers.DictField(child=serializers.FloatField(), read_only=True,
                                       help_text="Effective values (defaults with this tenant's overrides).")
    schema = ThresholdSchemaSerializer(many=True, read_only=True)


class DetectorUpdateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    thresholds = serializers.DictField(
        child=serializers.FloatField(), required=False,
        help_text="Threshold name → new value; validated against the detector's schema.",
    )


class BacktestRequestSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=MAX_DAYS, default=30)
    detector = serializers.CharField(required=False, max_length=40, help_text="Only this detector (default: all).")
    thresholds = serializers.DictField(
        child=serializers.FloatField(), required=False,
        help_text="Try these thresholds for `detector` (nothing is saved).",
    )

    def validate(self, data):
        if "thresholds" in data and "detector" not in data:
            raise serializers.ValidationError({"detector": "Name the detector whose thresholds to try."})
        return data


class BacktestSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    opened = AnomalySerializer(many=True, help_text="Anomalies that would open (their ids are not kept).")
    updated = AnomalySerializer(many=True, help_text="Open anomalies that would be updated.")
    recovered = AnomalySerializer(many=True, help_text="Open anomalies that would be resolved.")
    errors = serializers.ListField(child=serializers.DictField())
