from rest_framework import serializers

from webhooks.models import SigningSecret, WebhookEndpoint


class SigningSecretSerializer(serializers.ModelSerializer):
    """A secret as the API shows it: never the secret itself."""

    id = serializers.CharField(source="fingerprint", read_only=True, help_text="Fingerprint of the secret.")
    active = serializers.SerializerMethodField()

    class Meta:
        model = SigningSecret
        fields = ("id", "created_at", "expires_at", "active")
        read_only_fields = fields

    def get_active(self, secret) -> bool:
        return secret.is_active()


class EndpointSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="token", read_only=True)
    url = serializers.SerializerMethodField(help_text="The URL to register in Stripe.")
    secrets = SigningSecretSerializer(source="signing_secrets", many=True, read_only=True)
    rejections_last_7_days = serializers.SerializerMethodField(
        help_text="Refused deliveries by reason (a spike of signature_mismatch means a wrong secret)."
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("id", "label", "url", "enabled", "created_at", "last_received_at", "secrets",
                  "rejections_last_7_days")
        read_only_fields = fields

    def get_url(self, endpoint) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(endpoint.path) if request else endpoint.path

    def get_rejections_last_7_days(self, endpoint) -> dict[str, int]:
        return self.context.get("rejections", {}).get(endpoint.pk, {})


class NewSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(write_only=True, max_length=255, help_text="whsec_… from Stripe; never shown again.")
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ExpireSecretSerializer(serializers.Serializer):
    at = serializers.DateTimeField(required=False, allow_null=True, help_text="When it stops verifying (default now).")
