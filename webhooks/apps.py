from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self):
        from tenants.models import Tenant
        from webhooks import endpoint_cache
        from webhooks.models import SigningSecret, WebhookEndpoint

        for model in (Tenant, WebhookEndpoint, SigningSecret):
            post_save.connect(endpoint_cache.clear, sender=model, dispatch_uid=f"endpoint-cache-{model.__name__}")
            post_delete.connect(endpoint_cache.clear, sender=model, dispatch_uid=f"endpoint-cache-del-{model.__name__}")
