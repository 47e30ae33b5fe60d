"""Anomaly status changes: the one function the dashboard, the API and the admin call.

acknowledge, resolve, snooze (until a time), false_positive (with a reason),
reopen. Each records who and when, in the anomaly's fields and in an
append-only AnomalyStatusChange row.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from alerts import notices
from anomalies.models import ACTIVE_STATUSES, Anomaly, AnomalyStatus, AnomalyStatusChange

SYSTEM = "system"

_ALLOWED_FROM = {
    "acknowledge": {AnomalyStatus.OPEN, AnomalyStatus.SNOOZED},
    "resolve": set(ACTIVE_STATUSES),
    "snooze": {AnomalyStatus.OPEN, AnomalyStatus.ACKNOWLEDGED, AnomalyStatus.SNOOZED},
    "false_positive": set(ACTIVE_STATUSES),
    "reopen": {AnomalyStatus.ACKNOWLEDGED, AnomalyStatus.SNOOZED, AnomalyStatus.RESOLVED, AnomalyStatus.FALSE_POSITIVE},
}
ACTIONS = tuple(_ALLOWED_FROM)


class LifecycleError(ValueError):
    """A refused status change; `code` is stable for the API, `field` names the bad input."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _actor_label(actor, actor_label: str | None) -> str:
    if actor_label:
        return actor_label[:150]
    if actor is not None:
        return (actor.get_username() or str(actor.pk))[:150]
    return SYSTEM


@transaction.atomic
def change_status(
    anomaly: Anomaly,
    action: str,
    *,
    actor=None,
    actor_label: str | None = None,
    until: datetime | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> Anomaly:
    if action not in _ALLOWED_FROM:
        raise LifecycleError("invalid_action", f"unknown action {action!r}; use one of {', '.join(ACTIONS)}", "action")
    anomaly = Anomaly.objects.select_for_update().get(pk=anomaly.pk)
    if anomaly.status not in _ALLOWED_FROM[action]:
        raise LifecycleError(
            "invalid_transition", f"cannot {action.replace('_', ' ')} an anomaly that is {anomaly.status}"
        )
    now = now or timezone.now()
    who = _actor_label(actor, actor_label)
    reason = (reason or "").strip()
    previous = anomaly.status

    if action == "acknowledge":
        anomaly.status = AnomalyStatus.ACKNOWLEDGED
        anomaly.acknowledged_at, anomaly.acknowledged_by = now, who
    elif action == "resolve":
        anomaly.status = AnomalyStatus.RESOLVED
        anomaly.resolved_at, anomaly.resolved_by = now, who
    elif action == "snooze":
        if until is None:
            raise LifecycleError("required", "snooze needs an 'until' time", "until")
        if until <= now:
            raise LifecycleError("invalid", "'until' must be in the future", "until")
        anomaly.status = AnomalyStatus.SNOOZED
        anomaly.snoozed_until, anomaly.snoozed_by = until, who
    elif action == "false_positive":
        if not reason:
            raise LifecycleError("required", "marking a false positive needs a reason", "reason")
        anomaly.status = AnomalyStatus.FALSE_POSITIVE
        anomaly.false_positive_at, anomaly.false_positive_by = now, who
        anomaly.false_positive_reason = reason
    elif action == "reopen":
        if previous not in ACTIVE_STATUSES and _another_active(anomaly):
            raise LifecycleError(
                "conflict", "a newer anomaly with the same fingerprint is already open; triage that one instead"
            )
        anomaly.status = AnomalyStatus.OPEN
        anomaly.snoozed_until = None

    anomaly.save()
    AnomalyStatusChange.objects.create(
        tenant=anomaly.tenant,
        anomaly=anomaly,
        from_status=previous,
        to_status=anomaly.status,
        actor=actor if actor is not None and getattr(actor, "pk", None) else None,
        actor_label=who,
        reason=reason,
    )
    notices.anomaly_status_changed(anomaly, previous)  # resolve notices, queued in this transaction
    return anomaly


def _another_active(anomaly: Anomaly) -> bool:
    return (
        Anomaly.objects.filter(
            livemode=anomaly.livemode,
            detector=anomaly.detector,
            fingerprint=anomaly.fingerprint,
            status__in=ACTIVE_STATUSES,
        )
        .exclude(pk=anomaly.pk)
        .exists()
    )


def wake_snoozed(now: datetime | None = None) -> int:
    """Snoozes that ran out become open again (in the current tenant's scope)."""
    now = now or timezone.now()
    woken = 0
    for anomaly in Anomaly.objects.filter(status=AnomalyStatus.SNOOZED, snoozed_until__lte=now):
        change_status(anomaly, "reopen", actor_label=SYSTEM, reason="snooze ended", now=now)
        woken += 1
    return woken
