"""A backtest that changes nothing: what the periodic rules would raise over the last days.

Runs `scans.backtest` (optionally with proposed thresholds for one detector,
validated as a real update would be) inside a transaction that is always
rolled back, and returns the would-be anomalies as plain objects. Called in
the tenant's scope by the API, and later the dashboard's settings page.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from anomalies.config import UnknownDetector, update_detector
from anomalies.models import Anomaly
from anomalies.registry import get_detector
from anomalies.scans import backtest

MAX_DAYS = 90


@dataclass
class Preview:
    start: datetime
    end: datetime
    opened: list[Anomaly] = field(default_factory=list)
    updated: list[Anomaly] = field(default_factory=list)
    recovered: list[Anomaly] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)


def preview_backtest(
    tenant, days: int, *, detector: str | None = None, thresholds: dict | None = None, now: datetime | None = None
) -> Preview:
    """Raises UnknownDetector, or ThresholdError for proposed thresholds out of range; writes nothing."""
    if detector is not None and get_detector(detector) is None:
        raise UnknownDetector(f"no detector named {detector!r}")
    end = now or timezone.now()
    preview = Preview(start=end - timedelta(days=days), end=end)
    with transaction.atomic():
        try:
            if thresholds is not None and detector is not None:
                update_detector(tenant, detector, thresholds=thresholds, enabled=True)
            outcome = backtest(tenant, preview.start, preview.end, only=detector)
        finally:
            transaction.set_rollback(True)
    preview.opened = _unique(outcome.opened)
    preview.updated = [a for a in _unique(outcome.updated + outcome.escalated) if a not in preview.opened]
    preview.recovered = _unique(outcome.recovered)
    preview.errors = outcome.errors
    return preview


def _unique(anomalies: list[Anomaly]) -> list[Anomaly]:
    seen, result = set(), []
    for anomaly in anomalies:
        if anomaly.public_id not in seen:
            seen.add(anomaly.public_id)
            result.append(anomaly)
    return result
