"""What a detector is: a small class with a name, subscriptions, a threshold schema and rules.

A detector never writes anything. `evaluate(ctx, event)` (event-driven rules)
and `scan(ctx, as_of)` (periodic rules) return findings, and the engine turns
them into anomalies. Detectors read state from the database through
`ctx.events()`, a queryset of the tenant's events in the detector's mode, and
measure every window in event time (`created`), never the wall clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
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


@dataclass(frozen=True)
class DetectorContext:
    """What a rule may read. The engine keeps one per (tenant, mode, detector) for a whole
    worker batch, so the per-batch helpers below remember across the batch's events."""

    tenant: Any
    livemode: bool
    thresholds: dict[str, int | float]
    detector: str = ""
    _seen: set = field(default_factory=set, compare=False, repr=False)

    def events(self):
        """The tenant's events in this mode: the only data a detector reads."""
        # A fresh clone of one prepared queryset: building the filter anew for every
        # query was a measurable share of the worker's time.
        return self._events.all()

    @cached_property
    def _events(self):
        from webhooks.models import StripeEvent

        return StripeEvent.objects.filter(tenant_id=self.tenant.pk, livemode=self.livemode)

    def first_in_batch(self, key) -> bool:
        """True the first time `key` comes up in this batch, False after.

        Every event of a batch is stored before the first is evaluated, so a rule
        whose result depends only on stored rows (not on which event triggered it)
        gives the same answer for every event of one invoice, say: it can skip the
        repeats. Findings are idempotent anyway; this only saves the queries.
        """
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def has_active_anomaly(self, fingerprint: str) -> bool:
        """Whether this rule has an open, acknowledged or snoozed anomaly with this fingerprint.

        Read once per context (a batch) and kept current by the engine's own opens and
        resolves, so a rule that can only resolve (a payment ending a lapse) skips its
        queries when there is nothing to resolve. An anomaly another worker opens during
        the batch is seen from the next batch on.
        """
        return fingerprint in self._active_fingerprints

    def note_anomaly(self, fingerprint: str, active: bool) -> None:
        """The engine opened (or resolved) an anomaly of this rule: keep has_active_anomaly current."""
        if "_active_fingerprints" in self.__dict__:
            (self._active_fingerprints.add if active else self._active_fingerprints.discard)(fingerprint)

    @cached_property
    def _active_fingerprints(self) -> set[str]:
        from anomalies.models import ACTIVE_STATUSES, Anomaly

        return set(
            Anomaly.objects.filter(
                tenant_id=self.tenant.pk, livemode=self.livemode, detector=self.detector, status__in=ACTIVE_STATUSES
            ).values_list("fingerprint", flat=True)
        )


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
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
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
