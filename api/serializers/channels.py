"""Alert channels and their deliveries as the API shows them.

Validation of what a channel may be (kinds, typed configs, detectors, quiet hours,
digests) is alerts.channels' and alerts.config's: these serializers only check the
shape of the request. Credentials never come back in full (alerts.config.masked_config);
a webhook channel's signing secret only in the response that created it.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from alerts.config import masked_config, secret_hint
from alerts.models import AlertChannel, AlertDelivery, ChannelKind, DigestFrequency, ModeFilter
from anomalies.models import Severity

_URL = {"type": "object", "title": "UrlConfig", "additionalProperties": False, "required": ["url"],
        "properties": {"url": {"type": "string", "maxLength": 2000,
                               "description": "slack, discord, webhook: an https URL. "
                                              "Slack and Discord URLs come back masked (`host/…wxyz`)."}}}
_EMAIL = {"type": "object", "title": "EmailConfig", "additionalProperties": False, "required": ["to"],
          "properties": {"to": {"oneOf": [{"type": "array", "items": {"type": "string"}, "maxItems": 20},
                                          {"type": "string"}],
                                "description": "email: up to 20 addresses (a list, or one comma-separated string)."}}}
_PAGERDUTY = {"type": "object", "title": "PagerDutyConfig", "additionalProperties": False, "required": ["routing_key"],
              "properties": {"routing_key": {"type": "string",
                                             "description": "pagerduty: the 32-character Events API v2 integration "
                                                            "key; comes back masked (`…wxyz`)."}}}


@extend_schema_field({"oneOf": [_EMAIL, _URL, _PAGERDUTY],
                      "description": "Typed by `kind`: email `{to}`; slack, discord, webhook `{url}`; "
                                     "pagerduty `{routing_key}`. Unknown settings are refused."})
class ConfigField(serializers.JSONField):
    pass


# Inline enums, wrapped in allOf so drf-spectacular does not lift them into shared components:
# "kind" and "min_severity" would otherwise collide with the deliveries' notice kinds and the
# anomalies' severity in its enum naming (and --fail-on-warn would fail).
@extend_schema_field({"type": "string", "allOf": [{"enum": list(ChannelKind.values)}]})
class KindField(serializers.CharField):
    """The kind, checked by alerts.config (an unknown kind is a 400 on `kind`)."""


@extend_schema_field({"type": "string", "allOf": [{"enum": list(Severity.values)}]})
class SeverityField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=Severity.choices, **kwargs)


class ChannelSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    kind = KindField(read_only=True)
    min_severity = SeverityField(read_only=True)
    config = serializers.SerializerMethodField(help_text="The channel's settings, credentials masked.")
    signing_secret_hint = serializers.SerializerMethodField(
        help_text="Webhook channels: `bwsec_…` and the secret's last 4 characters (null for other kinds)."
    )
    detectors = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = AlertChannel
        fields = (
            "id", "name", "kind", "config", "signing_secret_hint", "min_severity", "detectors", "mode",
            "send_resolved", "enabled", "quiet_start", "quiet_end", "digest", "next_digest_at",
            "last_sent_at", "last_error", "last_error_at", "consecutive_failures", "auto_disabled_at",
            "created_at", "updated_at",
        )
        read_only_fields = fields

    @extend_schema_field(ConfigField)
    def get_config(self, channel) -> dict:
        return masked_config(channel.kind, channel.config)

    def get_signing_secret_hint(self, channel) -> str | None:
        return secret_hint(channel.signing_secret) if channel.kind == ChannelKind.WEBHOOK else None


class ChannelWithSecretSerializer(ChannelSerializer):
    signing_secret = serializers.SerializerMethodField(
        help_text="The full signing secret (`bwsec_…`), only in the response that created it: creating a "
                  "webhook channel, turning a channel into one, rotating. Store it now; null otherwise."
    )

    class Meta(ChannelSerializer.Meta):
        fields = (*ChannelSerializer.Meta.fields, "signing_secret")
        read_only_fields = fields

    def get_signing_secret(self, channel) -> str | None:
        return getattr(channel, "revealed_secret", None)


class ChannelWriteSerializer(serializers.Serializer):
    """The request body of create (name, kind, config required) and update (any subset)."""

    name = serializers.CharField(max_length=100)
    kind = KindField(max_length=20)
    config = ConfigField()
    min_severity = SeverityField(required=False,
                                           help_text="Only anomalies at least this severe (default medium).")
    detectors = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=50,
                                      help_text="Only these detectors; empty means all.")
    mode = serializers.ChoiceField(choices=ModeFilter.choices, required=False, help_text="Default live.")
    send_resolved = serializers.BooleanField(required=False)
    enabled = serializers.BooleanField(required=False)
    quiet_start = serializers.TimeField(required=False, allow_null=True,
                                        help_text="Quiet hours in the tenant's time zone (both or neither).")
    quiet_end = serializers.TimeField(required=False, allow_null=True)
    digest = serializers.ChoiceField(choices=DigestFrequency.choices, required=False,
                                     help_text="E-mail channels only.")


class TestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()
    status = serializers.IntegerField(allow_null=True, help_text="The receiver's HTTP status, when there was one.")


@extend_schema_field({"type": "string", "allOf": [{"enum": [*Severity.values, ""]}],
                      "description": "The anomaly's severity when queued; empty for tests and digests."})
class DeliverySeverityField(serializers.CharField):
    pass


class DeliverySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    severity = DeliverySeverityField(read_only=True)
    channel = serializers.UUIDField(source="channel.public_id", read_only=True)
    anomaly = serializers.UUIDField(source="anomaly.public_id", read_only=True, allow_null=True, default=None,
                                    help_text="Null for tests and digests.")
    message_id = serializers.UUIDField(read_only=True, allow_null=True,
                                       help_text="Shared by the rows sent together in one message.")

    class Meta:
        model = AlertDelivery
        fields = ("id", "channel", "anomaly", "kind", "severity", "status", "attempts", "next_attempt_at",
                  "response_status", "error", "message_id", "created_at", "sent_at")
        read_only_fields = fields
