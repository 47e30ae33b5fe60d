from django.apps import AppConfig


class BillingWatchConfig(AppConfig):
    name = "billingwatch"
    verbose_name = "BillingWatch"
