from rest_framework import serializers


class StatusSerializer(serializers.Serializer):
    pending_events = serializers.IntegerField(help_text="Received, not yet processed (pending or processing).")
    failed_events = serializers.IntegerField(help_text="Failed (retrying or given up); see /events/?status=failed.")
    oldest_pending_age_seconds = serializers.FloatField(allow_null=True)
    last_event_received_at = serializers.DateTimeField(allow_null=True)
