"""What a detector is: a small class with a name, subscriptions, a threshold schema and rules.

A detector never writes anything. `evaluate(ctx, event)` (event-driven rules)
and `scan(ctx, as_of)` (periodic rules) return findings, and the engine turns
them into anomalies. Detectors read state from the database through
`ctx.events()`, a queryset of the tenant's events in the detector's mode, and
measure every window in event time (`created`), never the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from anomalies.models import Severity


@dataclass(frozen=True, slots=True)
class Threshold:
    """One tunable number of a detector, with its bounds and a plain-language meaning."""

    name: str
    default: int | float
    min: int | float
    max: int | float
    help: str
    type: type = float

    def as_schema(self) -> dict:
        return {
            "name": self.name,
            "type": "integer" if self.type is int else "number",
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "help": self.help,
        }


class ThresholdError(ValueError):
    """Invalid thresholds; `fields` maps each field to its message."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a detector saw. The engine upserts it into an anomaly by fingerprint."""

    fingerprint: str
    severity: Severity
    title: str
    summary: str
    occurred_at: datetime  # event time
    occurrence_key: str  # same facts → same key, whatever the processing order
    customer_id: str = ""
    event_ids: tuple[str, ...] = ()  # Stripe event ids behind it
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recovery:
    """The condition behind an active anomaly has cleared (e.g. the lapsed subscription paid)."""

    fingerprint: str
    occurred_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class DetectorContext:
    tenant: Any
    livemode: bool
    thresholds: dict[str, int | float]

    def events(self):
        """The tenant's events in this mode: the only data a detector reads."""
        from webhooks.models import StripeEvent

        return StripeEvent.objects.filter(tenant=self.tenant, livemode=self.livemode)


class Detector:
    name: ClassVar[str]
    title: ClassVar[str]  # short, for lists
    description: ClassVar[str]  # plain language, shown next to its settings
    event_types: ClassVar[frozenset[str]] = frozenset()
    thresholds: ClassVar[tuple[Threshold, ...]] = ()
    has_scan: ClassVar[bool] = False

    def evaluate(self, ctx: DetectorContext, event) -> Iterable[Finding | Recovery]:
        return ()

    def scan(self, ctx: DetectorContext, as_of: datetime) -> Iterable[Finding | Recovery]:
        return ()

    # --- thresholds -------------------------------------------------------------
    @classmethod
    def defaults(cls) -> dict[str, int | float]:
        return {t.name: t.default for t in cls.thresholds}

    @classmethod
    def validate_thresholds(cls, values: dict) -> dict[str, int | float]:
        """Known fields only, numbers only, within bounds; returns the cleaned overrides."""
        if not isinstance(values, dict):
            raise ThresholdError({"thresholds": "must be an object of threshold names to numbers"})
        schema = {t.name: t for t in cls.thresholds}
        errors, cleaned = {}, {}
        for key, value in values.items():
            threshold = schema.get(key)
            if threshold is None:
                errors[key] = f"unknown threshold; known: {', '.join(sorted(schema)) or 'none'}"
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                errors[key] = f"must be a number between {threshold.min} and {threshold.max}"
                continue
            if threshold.type is int and value != int(value):
                errors[key] = f"must be a whole number between {threshold.min} and {threshold.max}"
                continue
            if not threshold.min <= value <= threshold.max:
                errors[key] = f"must be between {threshold.min} and {threshold.max}"
                continue
            cleaned[key] = threshold.type(value)
        if errors:
            raise ThresholdError(errors)
        return cleaned
