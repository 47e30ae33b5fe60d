import json

from django import template
from django.utils.http import urlencode

from anomalies.text import money as format_money
from dashboard.stripe_links import stripe_url

register = template.Library()


@register.filter
def money(amount, currency):
    if amount is None or not currency:
        return "—"
    return format_money(int(amount), currency)


@register.filter
def percent(value, digits=1):
    if value is None:
        return "—"
    return f"{value * 100:.{int(digits)}f} %"


@register.filter
def signed_percent(value):
    if value is None:
        return "new"
    return f"{value * 100:+.0f} %"


@register.filter
def stripe_link(object_id, livemode):
    return stripe_url(object_id, bool(livemode))


@register.filter
def pretty_json(value):
    return json.dumps(value, indent=2, sort_keys=True, default=str)


# Evidence metrics that detectors report in minor units of the anomaly's currency.
MONEY_METRICS = frozenset({
    "amount", "amount_due", "total", "revenue", "expected", "refunded", "usual_other", "monthly_loss",
    "monthly_before", "monthly_after", "renewals_due",
})


@register.simple_tag
def metric_value(key, value, metrics):
    """A metric as a reader wants it: money in the anomaly's currency, anything else as is."""
    currency = metrics.get("currency") if isinstance(metrics, dict) else None
    if key in MONEY_METRICS and currency and isinstance(value, int) and not isinstance(value, bool):
        return money(value, currency)
    return value


@register.filter
def humanize_name(value):
    return str(value).replace("_", " ")


@register.simple_tag(takes_context=True)
def query(context, **changes):
    """The current query string with some parameters changed (None removes one): for pagination and sorting."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value not in (None, ""):
            params[key] = value
    return "?" + urlencode(sorted(params.lists()), doseq=True) if params else "?"


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key)
