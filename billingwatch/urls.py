from django.contrib import admin
from django.urls import include, path

from billingwatch import health

admin.site.site_header = "BillingWatch operations"
admin.site.site_title = "BillingWatch"
admin.site.index_title = "Tenants, webhooks and events"

urlpatterns = [
    path("webhooks/", include("webhooks.urls")),
    path("api/", include("api.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
]
