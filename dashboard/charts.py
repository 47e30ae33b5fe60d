"""Chart.js configurations (plain JSON, rendered by static/dashboard/app.js) from the metrics series.

Amounts are shown in major units; the revenue band is the revenue_drop
detector's own expectation: from the baseline down to the tenant's `drop`
threshold below it (a day under the band is what the detector judges a drop).
"""

from anomalies.text import ZERO_DECIMAL

ACCENT, BAND, DANGER = "#4f46e5", "rgba(79, 70, 229, 0.12)", "#dc2626"


def major(amount, currency: str):
    if amount is None:
        return None
    return amount if currency.lower() in ZERO_DECIMAL else round(amount / 100, 2)


def revenue_chart(currency: str, days: list[dict], drop: float) -> dict:
    upper = [major(d["baseline"], currency) for d in days]
    lower = [None if v is None else round(v * (1 - drop), 2) for v in upper]
    return {
        "type": "line",
        "data": {
            "labels": [d["day"].strftime("%b %d") for d in days],
            "datasets": [
                {"label": "Expected (baseline)", "data": upper, "borderColor": "rgba(79,70,229,0.35)",
                 "borderDash": [4, 4], "pointRadius": 0, "fill": False, "spanGaps": True},
                {"label": f"Alert below ({round(drop * 100)} % under)", "data": lower, "borderColor": "rgba(0,0,0,0)",
                 "backgroundColor": BAND, "pointRadius": 0, "fill": "-1", "spanGaps": True},
                {"label": f"Revenue ({currency.upper()})", "data": [major(d["amount"], currency) for d in days],
                 "borderColor": ACCENT, "backgroundColor": ACCENT, "tension": 0.25, "pointRadius": 2},
            ],
        },
    }


def failure_chart(hours: list[dict], zone, threshold: float) -> dict:
    return {
        "type": "bar",
        "data": {
            "labels": [h["hour"].astimezone(zone).strftime("%a %H:00") for h in hours],
            "datasets": [
                {"label": "Failed charges (%)", "data": [round((1 - h["success_rate"]) * 100, 1) for h in hours],
                 "backgroundColor": DANGER},
                {"type": "line", "label": f"Spike threshold ({round(threshold * 100)} %)",
                 "data": [round(threshold * 100, 1)] * len(hours), "borderColor": "rgba(220,38,38,0.4)",
                 "borderDash": [4, 4], "pointRadius": 0},
            ],
        },
        "options": {"scales": {"y": {"min": 0, "max": 100}}},
    }


def evidence_chart(events: list) -> dict | None:
    """The events behind an anomaly over time (amount of each), or None when they carry no amounts."""
    points = [e for e in events if e.amount is not None]
    if not points:
        return None
    return {
        "type": "bar",
        "data": {
            "labels": [e.created.strftime("%b %d %H:%M") for e in points],
            "datasets": [{"label": "Amount", "data": [major(e.amount, e.currency or "usd") for e in points],
                          "backgroundColor": ACCENT}],
        },
    }
