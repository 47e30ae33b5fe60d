from django.shortcuts import render

from anomalies.config import describe_detectors
from dashboard import charts
from dashboard.access import tenant_page
from dashboard.overview import build_overview, has_events
from dashboard.views.webhooks import setup_context


@tenant_page
def overview(request):
    member = request.member
    if not has_events(member.tenant):
        return render(request, "dashboard/setup_guide.html", setup_context(request))
    data = build_overview(member.tenant, member.livemode)
    thresholds = {d.name: d.thresholds for d in describe_detectors(member.tenant)}
    revenue_charts = [
        (summary, charts.revenue_chart(summary.currency, summary.days, thresholds["revenue_drop"]["drop"]))
        for summary in data.currencies
    ]
    failure = charts.failure_chart(data.hours, data.zone, thresholds["charge_failure_spike"]["failure_rate"])
    return render(request, "dashboard/overview.html", {
        "data": data, "revenue_charts": revenue_charts, "failure_chart": failure if data.hours else None,
    })

