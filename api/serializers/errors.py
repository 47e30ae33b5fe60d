from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. not_found, read_only, invalid.")
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.CharField(), help_text="Field name → what is wrong with it.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
