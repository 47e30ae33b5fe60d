from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers


class MetricsQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First local day (default: 29 days before end).")
    end = serializers.DateField(required=False, help_text="Last local day (default: today).")
    livemode = serializers.BooleanField(required=False, default=True)

    def validate(self, data):
        data["end"] = data.get("end") or timezone.now().date()
        data["start"] = data.get("start") or data["end"] - timedelta(days=29)
        return data


class RevenueDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    amount = serializers.IntegerField(help_text="Successful charges, minor units.")
    baseline = serializers.IntegerField(allow_null=True, help_text="What revenue_drop expected (null: no history).")


class RevenueSerializer(serializers.Serializer):
    currency = serializers.CharField()
    days = RevenueDaySerializer(many=True)


class ChargeHourSerializer(serializers.Serializer):
    hour = serializers.DateTimeField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    success_rate = serializers.FloatField()


class DisputeRefundDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    disputes = serializers.IntegerField()
    disputed_amount = serializers.IntegerField()
    refunds = serializers.IntegerField()
    refunded_amount = serializers.IntegerField()


class DisputesRefundsSerializer(serializers.Serializer):
    currency = serializers.CharField()
    days = DisputeRefundDaySerializer(many=True)


class MetricsEnvelope(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    timezone = serializers.CharField(help_text="The tenant's time zone: days are its local days.")
    livemode = serializers.BooleanField()


class RevenueMetricsSerializer(MetricsEnvelope):
    currencies = RevenueSerializer(many=True)


class ChargeSuccessMetricsSerializer(MetricsEnvelope):
    hours = ChargeHourSerializer(many=True)


class DisputesRefundsMetricsSerializer(MetricsEnvelope):
    currencies = DisputesRefundsSerializer(many=True)
