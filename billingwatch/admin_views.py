"""Admin pages that are not a model's changelist: the system status page."""

from django.contrib import admin
from django.template.response import TemplateResponse

from billingwatch.system_status import system_status


def status_page(request):
    context = {
        **admin.site.each_context(request),
        "title": "System status",
        "status": system_status(),
    }
    return TemplateResponse(request, "admin/system_status.html", context)
