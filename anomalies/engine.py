"""The detection engine: runs detectors on stored events and turns findings into anomalies.

Called inside the tenant's scope: by the worker for each claimed event
(`evaluate_event`) and for each tenant's periodic scans (`run_scans`), and by
import_events for the backtest over an imported span. Detectors only return
findings; the upsert here is the single place anomalies are written by
detection, so its rules hold for every detector:

- one active anomaly per (livemode, detector, fingerprint) (a partial unique
  index backs this up between concurrent workers);
- a finding is counted once: its occurrence key is remembered, so
  reprocessing the same events, in any order, changes nothing;
- a new finding updates the active anomaly (last/first seen, occurrences,
  evidence, severity only upwards); after resolve or false positive it opens
  a new anomaly;
- a detector that raises is recorded and skipped; the others still run.
"""

import hashlib
import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, connection, transaction

from alerts import notices
from anomalies import lifecycle
from anomalies.detectors.base import DetectorContext, Finding, Recovery
from anomalies.models import ACTIVE_STATUSES, SEVERITY_RANK, Anomaly, AnomalyOccurrence, DetectorConfig
from anomalies.registry import detectors_for, load_detectors, scanning_detectors

logger = logging.getLogger(__name__)

MAX_EVIDENCE_EVENTS = 50


@dataclass
class DetectorSettings:
    """The tenant's effective settings of every detector (defaults + overrides)."""

    enabled: dict[str, bool] = field(default_factory=dict)
    thresholds: dict[str, dict] = field(default_factory=dict)
    _contexts: dict[tuple, DetectorContext] = field(default_factory=dict, repr=False)

    def context(self, tenant, livemode: bool, detector: str) -> DetectorContext:
        """One context per (tenant, mode, detector) for as long as these settings live (a batch)."""
        key = (tenant.pk, livemode, detector)
        if key not in self._contexts:
            self._contexts[key] = DetectorContext(tenant, livemode, self.thresholds[detector], detector)
        return self._contexts[key]

    @classmethod
    def for_tenant(cls, tenant) -> "DetectorSettings":
        overrides = {c.detector: c for c in DetectorConfig.objects.filter(tenant=tenant)}
        settings = cls()
        for name, detector in load_detectors().items():
            config = overrides.get(name)
            settings.enabled[name] = config.enabled if config else True
            settings.thresholds[name] = {**detector.defaults(), **(config.thresholds if config else {})}
        return settings


@dataclass
class Outcome:
    opened: list[Anomaly] = field(default_factory=list)
    updated: list[Anomaly] = field(default_factory=list)
    escalated: list[Anomaly] = field(default_factory=list)
    recovered: list[Anomaly] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    def merge(self, other: "Outcome") -> None:
        for name in ("opened", "updated", "escalated", "recovered", "errors"):
            getattr(self, name).extend(getattr(other, name))


def evaluate_event(event, settings: DetectorSettings | None = None) -> Outcome:
    settings = settings or DetectorSettings.for_tenant(event.tenant)
    outcome = Outcome()
    for detector_class in detectors_for(event.type):
        name = detector_class.name
        if not settings.enabled[name]:
            continue
        ctx = settings.context(event.tenant, event.livemode, name)
        _run(name, lambda d=detector_class, c=ctx: d().evaluate(c, event), ctx, outcome)
    return outcome


def run_scans(tenant, as_of: datetime, settings: DetectorSettings | None = None, only: str | None = None) -> Outcome:
    """Every enabled periodic rule, in each mode the tenant has events in, as of `as_of`."""
    from webhooks.models import StripeEvent

    settings = settings or DetectorSettings.for_tenant(tenant)
    outcome = Outcome()
    modes = set(StripeEvent.objects.filter(tenant=tenant).values_list("livemode", flat=True).distinct())
    for detector_class in scanning_detectors():
        name = detector_class.name
        if (only and name != only) or not settings.enabled[name]:
            continue
        for livemode in sorted(modes):
            ctx = settings.context(tenant, livemode, name)
            _run(name, lambda d=detector_class, c=ctx: d().scan(c, as_of), ctx, outcome)
    return outcome


def _run(name: str, produce, ctx: DetectorContext, outcome: Outcome) -> None:
    """Run one rule: read first, then write its findings in one transaction.

    Detectors only read, and most runs find nothing, so the reads run without a
    transaction of their own (a savepoint per detector per event was most of the
    statements the worker sent). Inside a caller's transaction they get a
    savepoint after all: a failed query there would abort the caller's work.
    """
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            items = list(produce() or ())
        if not items:
            return
        with transaction.atomic():
            local = Outcome()
            for item in items:
                if isinstance(item, Recovery):
                    _apply_recovery(ctx, name, item, local)
                else:
                    _apply_finding(ctx, name, item, local)
    except Exception as exc:  # a detector bug must not stop the others
        logger.warning("detector %s failed: %s", name, exc, exc_info=True)
        outcome.errors.append({"detector": name, "error": f"{type(exc).__name__}: {exc}"[:500]})
    else:
        outcome.merge(local)


def _key_hash(ctx: DetectorContext, detector: str, fingerprint: str, occurrence_key: str) -> str:
    raw = f"{int(ctx.livemode)}\x1f{detector}\x1f{fingerprint}\x1f{occurrence_key}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _active(ctx: DetectorContext, detector: str, fingerprint: str):
    return (
        Anomaly.objects.select_for_update()
        .filter(livemode=ctx.livemode, detector=detector, fingerprint=fingerprint, status__in=ACTIVE_STATUSES)
        .first()
    )


def _apply_finding(ctx: DetectorContext, detector: str, finding: Finding, outcome: Outcome) -> None:
    key_hash = _key_hash(ctx, detector, finding.fingerprint, finding.occurrence_key)
    if AnomalyOccurrence.objects.filter(key_hash=key_hash).exists():
        return  # already counted, maybe under an anomaly resolved since: nothing new
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                _upsert(ctx, detector, finding, key_hash, outcome)
            return
        except IntegrityError:
            # A concurrent worker opened this anomaly or counted this finding
            # first; look again with its row in place.
            if attempt == 2 or AnomalyOccurrence.objects.filter(key_hash=key_hash).exists():
                return


def _upsert(ctx, detector: str, finding: Finding, key_hash: str, outcome: Outcome) -> None:
    anomaly = _active(ctx, detector, finding.fingerprint)
    if anomaly is None:
        anomaly = Anomaly.objects.create(
            tenant=ctx.tenant,
            livemode=ctx.livemode,
            detector=detector,
            fingerprint=finding.fingerprint,
            severity=finding.severity,
            title=finding.title[:200],
            summary=finding.summary,
            customer_id=finding.customer_id[:255],
            evidence=_merged_evidence({}, finding, finding_is_latest=True),
            first_seen_at=finding.occurred_at,
            last_seen_at=finding.occurred_at,
            occurrences=1,
        )
        outcome.opened.append(anomaly)
        ctx.note_anomaly(finding.fingerprint, active=True)
        notices.anomaly_opened(anomaly)  # the outbox: queued in this transaction
    else:
        escalated = SEVERITY_RANK[finding.severity] > SEVERITY_RANK[anomaly.severity]
        anomaly.occurrences += 1
        anomaly.first_seen_at = min(anomaly.first_seen_at, finding.occurred_at)
        latest = finding.occurred_at >= anomaly.last_seen_at
        if latest:  # the newest finding describes the anomaly; older ones only add evidence
            anomaly.last_seen_at = finding.occurred_at
            anomaly.title, anomaly.summary = finding.title[:200], finding.summary
            anomaly.customer_id = finding.customer_id[:255] or anomaly.customer_id
        anomaly.evidence = _merged_evidence(anomaly.evidence, finding, finding_is_latest=latest)
        if escalated:
            anomaly.severity = finding.severity
            outcome.escalated.append(anomaly)
        anomaly.save()
        if escalated:
            notices.anomaly_escalated(anomaly)
        outcome.updated.append(anomaly)
    AnomalyOccurrence.objects.create(
        tenant=ctx.tenant, anomaly=anomaly, key_hash=key_hash, occurred_at=finding.occurred_at
    )


def _merged_evidence(old: dict, finding: Finding, finding_is_latest: bool) -> dict:
    """Event ids accumulate (bounded); the metrics are those of the latest finding."""
    ids = list(dict.fromkeys([*old.get("event_ids", []), *finding.event_ids]))
    if len(ids) > MAX_EVIDENCE_EVENTS:  # keep the first and the latest ones
        half = MAX_EVIDENCE_EVENTS // 2
        ids = ids[:half] + ids[-half:]
    metrics = dict(finding.metrics) if finding_is_latest else {k: v for k, v in old.items() if k != "event_ids"}
    return {**metrics, "event_ids": ids}


def _apply_recovery(ctx, detector: str, recovery: Recovery, outcome: Outcome) -> None:
    anomaly = _active(ctx, detector, recovery.fingerprint)
    if anomaly is None or recovery.occurred_at < anomaly.last_seen_at:
        return  # nothing open, or the "recovery" predates what we saw: not a recovery
    outcome.recovered.append(
        lifecycle.change_status(anomaly, "resolve", actor_label=lifecycle.SYSTEM, reason=recovery.reason)
    )
    ctx.note_anomaly(recovery.fingerprint, active=False)
