from django.contrib import admin
from django.urls import include, path

from billingwatch import admin_views, health

admin.site.site_header = "BillingWatch operations"
admin.site.site_title = "BillingWatch"
admin.site.index_title = "Tenants, webhooks and events"

urlpatterns = [
    path("webhooks/", include("webhooks.urls")),
    path("api/", include("api.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("admin/status/", admin.site.admin_view(admin_views.status_page), name="admin-system-status"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("dashboard.urls")),  # / and the tenant dashboards /t/<slug>/…
]
