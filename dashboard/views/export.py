"""CSV export of anomalies and of events for the filter in the query string (streamed, in the tenant scope)."""

import csv

from django.http import StreamingHttpResponse
from django.utils import timezone

from dashboard.access import tenant_page
from dashboard.views.anomalies import filtered_anomalies
from dashboard.views.events import filtered_events
from tenants.scope import tenant_scope

ANOMALY_COLUMNS = ("public_id", "detector", "severity", "status", "title", "summary", "customer_id", "livemode",
                   "first_seen_at", "last_seen_at", "occurrences")
EVENT_COLUMNS = ("stripe_id", "type", "livemode", "created", "received_at", "source", "object_type", "object_id",
                 "customer_id", "amount", "currency", "status", "attempts", "last_error")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    """Text from payloads could start a spreadsheet formula: quote it (CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class _Echo:
    def write(self, value):
        return value


def _csv_response(tenant, rows, columns, name):
    def stream():
        writer = csv.writer(_Echo())
        yield writer.writerow(columns)
        # The response body is produced after the view returned: enter the scope again here.
        with tenant_scope(tenant):
            for row in rows.values_list(*columns).iterator(chunk_size=2000):
                yield writer.writerow([_cell(v) for v in row])

    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{tenant.slug}-{name}-{stamp}.csv"'
    return response


@tenant_page
def anomalies_csv(request):
    _, rows = filtered_anomalies(request)
    return _csv_response(request.member.tenant, rows, ANOMALY_COLUMNS, "anomalies")


@tenant_page
def events_csv(request):
    _, rows = filtered_events(request)
    return _csv_response(request.member.tenant, rows, EVENT_COLUMNS, "events")
