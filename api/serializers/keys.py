from rest_framework import serializers

from tenants.models import ApiKey


class ApiKeySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="prefix", read_only=True, help_text="The key's public prefix (bw_<id>_…).")

    class Meta:
        model = ApiKey
        fields = ("id", "name", "read_only", "created_at", "last_used_at", "revoked_at")
        read_only_fields = ("id", "created_at", "last_used_at", "revoked_at")
        extra_kwargs = {"name": {"max_length": 100}}

    def validate_name(self, value):
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value


class NewApiKeySerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The full key. Shown this once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = (*ApiKeySerializer.Meta.fields, "key")
        read_only_fields = (*ApiKeySerializer.Meta.read_only_fields, "key")
