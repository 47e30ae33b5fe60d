"""The engine's rules, independent of any one detector (a test detector stands in)."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from anomalies import lifecycle, registry
from anomalies.config import ThresholdError, UnknownDetector, describe_detectors, update_detector
from anomalies.detectors.base import Detector, Finding, Recovery, Threshold
from anomalies.models import Anomaly, AnomalyStatusChange, DetectorConfig, Severity
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, event, minutes, process, reprocess_all, store

pytestmark = pytest.mark.django_db


class Probe(Detector):
    """Fires on every failed charge of a customer; severity from the amount; recovers on success."""

    name = "probe"
    title = "Probe"
    description = "test detector"
    event_types = frozenset({"charge.failed", "charge.succeeded"})
    thresholds = (Threshold("critical_amount", 100_000, 1, 10_000_000, "amount that makes it critical", int),)

    def evaluate(self, ctx, event):
        if event.type == "charge.succeeded":
            yield Recovery(f"customer:{event.customer_id}", event.created, "a charge succeeded")
            return
        if event.customer_id == "cus_boom":
            raise RuntimeError("strange payload")
        severity = Severity.CRITICAL if event.amount >= ctx.thresholds["critical_amount"] else Severity.MEDIUM
        yield Finding(
            fingerprint=f"customer:{event.customer_id}",
            severity=severity,
            title=f"failure {event.object_id}",
            summary="s",
            occurred_at=event.created,
            occurrence_key=event.object_id,
            customer_id=event.customer_id,
            event_ids=(event.stripe_id,),
            metrics={"amount": event.amount},
        )


class Bystander(Detector):
    name = "bystander"
    title = "Bystander"
    description = "test detector that always fires"
    event_types = frozenset({"charge.failed"})

    def evaluate(self, ctx, event):
        yield Finding("all", Severity.LOW, "seen", "", event.created, event.object_id, event_ids=(event.stripe_id,))


@pytest.fixture(autouse=True)
def probes():
    registry.load_detectors()
    saved = dict(registry.DETECTORS)
    registry.DETECTORS.clear()
    registry.register(Probe)
    registry.register(Bystander)
    yield
    registry.DETECTORS.clear()
    registry.DETECTORS.update(saved)


def failed(at, customer="cus_A", amount=5000, **kw):
    return event("charge.failed", at, customer=customer, amount=amount, currency="usd", **kw)


def probe_anomalies(tenant):
    with tenant_scope(tenant):
        return list(Anomaly.objects.filter(detector="probe").order_by("id"))


def test_findings_with_one_fingerprint_group_into_one_anomaly(acme):
    a, b = failed(T0), failed(T0 + minutes(5), amount=200_000)
    store(acme.tenant, a, b)
    process()
    [anomaly] = probe_anomalies(acme.tenant)
    assert anomaly.occurrences == 2
    assert anomaly.severity == "critical"  # raised by the second finding
    assert anomaly.first_seen_at == T0 and anomaly.last_seen_at == T0 + minutes(5)
    assert anomaly.evidence == {"amount": 200_000, "event_ids": [a["id"], b["id"]]}
    assert anomaly.title == f"failure {b['data']['object']['id']}"


def test_severity_never_goes_down_and_older_findings_do_not_rewrite_the_story(acme):
    late_big, early_small = failed(T0 + minutes(10), amount=200_000), failed(T0)
    store(acme.tenant, late_big, early_small)  # the later one is processed first
    process()
    [anomaly] = probe_anomalies(acme.tenant)
    assert anomaly.severity == "critical"
    assert anomaly.title == f"failure {late_big['data']['object']['id']}"
    assert anomaly.evidence["amount"] == 200_000
    assert anomaly.first_seen_at == T0


def test_reprocessing_changes_nothing(acme):
    store(acme.tenant, failed(T0), failed(T0 + minutes(1)), failed(T0, customer="cus_B"))
    process()
    before = [(a.pk, a.occurrences, a.evidence, a.severity) for a in probe_anomalies(acme.tenant)]
    reprocess_all(acme.tenant)
    assert [(a.pk, a.occurrences, a.evidence, a.severity) for a in probe_anomalies(acme.tenant)] == before
    assert len(before) == 2


def test_after_resolve_a_new_finding_opens_a_new_anomaly_but_old_ones_do_not(acme):
    store(acme.tenant, failed(T0))
    process()
    [first] = probe_anomalies(acme.tenant)
    with tenant_scope(acme.tenant):
        lifecycle.change_status(first, "resolve", actor_label="tester")
    reprocess_all(acme.tenant)  # the same finding again: already counted
    assert len(probe_anomalies(acme.tenant)) == 1
    store(acme.tenant, failed(T0 + timedelta(days=1)))
    process()
    first_again, second = probe_anomalies(acme.tenant)
    assert first_again.status == "resolved" and second.status == "open"
    assert second.occurrences == 1


def test_false_positive_also_closes_the_fingerprint(acme):
    store(acme.tenant, failed(T0))
    process()
    [first] = probe_anomalies(acme.tenant)
    with tenant_scope(acme.tenant):
        lifecycle.change_status(first, "false_positive", actor_label="tester", reason="known test customer")
    store(acme.tenant, failed(T0 + minutes(1)))
    process()
    assert [a.status for a in probe_anomalies(acme.tenant)] == ["false_positive", "open"]


def test_acknowledged_and_snoozed_anomalies_keep_collecting(acme):
    store(acme.tenant, failed(T0))
    process()
    [anomaly] = probe_anomalies(acme.tenant)
    with tenant_scope(acme.tenant):
        lifecycle.change_status(anomaly, "acknowledge", actor_label="tester")
    store(acme.tenant, failed(T0 + minutes(1)))
    process()
    [anomaly] = probe_anomalies(acme.tenant)
    assert anomaly.status == "acknowledged" and anomaly.occurrences == 2


def test_recovery_resolves_only_when_newer(acme):
    store(acme.tenant, failed(T0 + minutes(10)), event("charge.succeeded", T0, customer="cus_A"))
    process()
    [anomaly] = probe_anomalies(acme.tenant)
    assert anomaly.status == "open"  # the success predates the failure
    store(acme.tenant, event("charge.succeeded", T0 + minutes(20), customer="cus_A"))
    process()
    [anomaly] = probe_anomalies(acme.tenant)
    assert anomaly.status == "resolved" and anomaly.resolved_by == "system"


def test_a_raising_detector_is_recorded_and_others_still_run(acme):
    from webhooks.models import StripeEvent

    bad = failed(T0, customer="cus_boom")
    store(acme.tenant, bad)
    process()
    with tenant_scope(acme.tenant):
        stored = StripeEvent.objects.get(stripe_id=bad["id"])
        assert stored.status == "processed"
        assert stored.detector_errors == [{"detector": "probe", "error": "RuntimeError: strange payload"}]
        assert Anomaly.objects.filter(detector="bystander").count() == 1


def test_live_and_test_mode_never_mix(acme):
    store(acme.tenant, failed(T0), failed(T0 + minutes(1), livemode=False))
    process()
    modes = sorted(a.livemode for a in probe_anomalies(acme.tenant))
    assert modes == [False, True]


def test_disabled_detector_does_not_run_and_thresholds_apply(acme):
    with tenant_scope(acme.tenant):
        update_detector(acme.tenant, "bystander", enabled=False)
        update_detector(acme.tenant, "probe", thresholds={"critical_amount": 1000})
    store(acme.tenant, failed(T0))
    process()
    with tenant_scope(acme.tenant):
        assert not Anomaly.objects.filter(detector="bystander").exists()
        assert Anomaly.objects.get(detector="probe").severity == "critical"


@pytest.mark.parametrize(
    ("thresholds", "fields"),
    [
        ({"critical_amount": 0}, {"critical_amount": "must be between 1 and 10000000"}),
        ({"critical_amount": 10_000_001}, {"critical_amount": "must be between 1 and 10000000"}),
        ({"critical_amount": "10"}, {"critical_amount": "must be a number between 1 and 10000000"}),
        ({"critical_amount": True}, {"critical_amount": "must be a number between 1 and 10000000"}),
        ({"critical_amount": 1.5}, {"critical_amount": "must be a whole number between 1 and 10000000"}),
        ({"nope": 1}, {"nope": "unknown threshold; known: critical_amount"}),
    ],
)
def test_out_of_range_thresholds_are_refused_and_nothing_changes(acme, thresholds, fields):
    with tenant_scope(acme.tenant):
        update_detector(acme.tenant, "probe", thresholds={"critical_amount": 5000})
        with pytest.raises(ThresholdError) as raised:
            update_detector(acme.tenant, "probe", thresholds=thresholds, enabled=False)
        assert raised.value.fields == fields
        config = DetectorConfig.objects.get(detector="probe")
    assert config.thresholds == {"critical_amount": 5000} and config.enabled is True


def test_unknown_detector_and_description(acme):
    with tenant_scope(acme.tenant):
        with pytest.raises(UnknownDetector):
            update_detector(acme.tenant, "nope", enabled=False)
        update_detector(acme.tenant, "probe", thresholds={"critical_amount": 100_000})  # the default: not stored
        assert DetectorConfig.objects.get(detector="probe").thresholds == {}
        [bystander, probe] = describe_detectors(acme.tenant)
    assert probe.thresholds == {"critical_amount": 100_000}
    assert probe.schema == [
        {"name": "critical_amount", "type": "integer", "default": 100_000, "min": 1, "max": 10_000_000,
         "help": "amount that makes it critical"}
    ]


# --- lifecycle ------------------------------------------------------------------

@pytest.fixture
def open_anomaly(acme):
    store(acme.tenant, failed(T0))
    process()
    return probe_anomalies(acme.tenant)[0]


def history(anomaly):
    with tenant_scope(anomaly.tenant):
        return list(AnomalyStatusChange.objects.filter(anomaly=anomaly).values_list(
            "from_status", "to_status", "actor_label", "reason").order_by("id"))


def test_each_status_change_records_who_and_when(acme, open_anomaly):
    user = get_user_model().objects.create_user("alice", "a@example.com", "pw-alice-123")
    until = timezone.now() + timedelta(hours=2)
    with tenant_scope(acme.tenant):
        a = lifecycle.change_status(open_anomaly, "acknowledge", actor=user)
        assert a.status == "acknowledged" and a.acknowledged_by == "alice" and a.acknowledged_at
        a = lifecycle.change_status(a, "snooze", actor=user, until=until)
        assert a.status == "snoozed" and a.snoozed_until == until
        a = lifecycle.change_status(a, "reopen", actor_label="api key ci")
        a = lifecycle.change_status(a, "resolve", actor=user, reason="refunded")
        assert a.resolved_by == "alice"
        a = lifecycle.change_status(a, "reopen", actor=user)
        a = lifecycle.change_status(a, "false_positive", actor=user, reason="test customer")
        assert a.false_positive_reason == "test customer"
    assert history(a) == [
        ("open", "acknowledged", "alice", ""),
        ("acknowledged", "snoozed", "alice", ""),
        ("snoozed", "open", "api key ci", ""),
        ("open", "resolved", "alice", "refunded"),
        ("resolved", "open", "alice", ""),
        ("open", "false_positive", "alice", "test customer"),
    ]


@pytest.mark.parametrize(
    ("action", "kwargs", "code", "field"),
    [
        ("snooze", {}, "required", "until"),
        ("snooze", {"until": timezone.now() - timedelta(minutes=1)}, "invalid", "until"),
        ("false_positive", {"reason": "  "}, "required", "reason"),
        ("reopen", {}, "invalid_transition", None),
        ("explode", {}, "invalid_action", "action"),
    ],
)
def test_refused_changes_leave_everything_as_it_was(acme, open_anomaly, action, kwargs, code, field):
    with tenant_scope(acme.tenant):
        with pytest.raises(lifecycle.LifecycleError) as raised:
            lifecycle.change_status(open_anomaly, action, actor_label="t", **kwargs)
        open_anomaly.refresh_from_db()
    assert (raised.value.code, raised.value.field) == (code, field)
    assert open_anomaly.status == "open"
    assert history(open_anomaly) == []


def test_reopen_refused_while_a_newer_one_is_open(acme, open_anomaly):
    with tenant_scope(acme.tenant):
        lifecycle.change_status(open_anomaly, "resolve", actor_label="t")
    store(acme.tenant, failed(T0 + timedelta(days=1)))
    process()
    with tenant_scope(acme.tenant), pytest.raises(lifecycle.LifecycleError, match="already open"):
        lifecycle.change_status(open_anomaly, "reopen", actor_label="t")


def test_snooze_ends_by_itself(acme, open_anomaly):
    now = timezone.now()
    with tenant_scope(acme.tenant):
        lifecycle.change_status(open_anomaly, "snooze", actor_label="t", until=now + timedelta(minutes=5))
        assert lifecycle.wake_snoozed(now) == 0
        assert lifecycle.wake_snoozed(now + timedelta(minutes=6)) == 1
        open_anomaly.refresh_from_db()
    assert open_anomaly.status == "open" and open_anomaly.snoozed_until is None
    assert history(open_anomaly)[-1] == ("snoozed", "open", "system", "snooze ended")


class BrokenQuery(Detector):
    """Its query fails in the database itself (not in Python)."""

    name = "broken_query"
    title = "Broken query"
    description = "test detector whose SQL fails"
    event_types = frozenset({"charge.failed"})

    def evaluate(self, ctx, event):
        list(ctx.events().extra(where=["no_such_column = 1"]))
        yield from ()


@pytest.mark.django_db(transaction=True)
def test_a_failing_query_outside_any_transaction_does_not_stop_the_other_detectors(acme):
    # The worker runs detectors' reads without a transaction (no savepoint per rule):
    # a database error in one rule must still leave the connection usable for the next.
    from webhooks.models import StripeEvent

    registry.DETECTORS.clear()
    registry.register(BrokenQuery)
    registry.register(Bystander)
    bad = failed(T0)
    store(acme.tenant, bad)
    assert process() == 1
    with tenant_scope(acme.tenant):
        stored = StripeEvent.objects.get(stripe_id=bad["id"])
        assert stored.status == "processed"
        [error] = stored.detector_errors
        assert error["detector"] == "broken_query" and "no_such_column" in error["error"]
        assert Anomaly.objects.filter(detector="bystander").count() == 1


class ResolveOnly(Detector):
    """Opens on a failure; on a success, looks for something to resolve only when it is open."""

    name = "resolve_only"
    title = "Resolve only"
    description = "test detector using the per-batch helpers"
    event_types = frozenset({"charge.failed", "charge.succeeded"})
    evaluated: list = []

    def evaluate(self, ctx, event):
        fingerprint = f"customer:{event.customer_id}"
        if event.type == "charge.failed":
            if ctx.first_in_batch(event.customer_id):
                self.evaluated.append(event.object_id)
                yield Finding(fingerprint, Severity.LOW, "failed", "", event.created, event.object_id)
        elif ctx.has_active_anomaly(fingerprint):
            yield Recovery(fingerprint, event.created, "a charge succeeded")


def resolve_only_anomalies(tenant):
    with tenant_scope(tenant):
        return list(Anomaly.objects.filter(detector="resolve_only").order_by("id"))


def test_an_anomaly_opened_earlier_in_the_batch_is_seen_by_has_active_anomaly(acme):
    registry.register(ResolveOnly)
    store(acme.tenant, failed(T0, customer="cus_A"), event("charge.succeeded", T0 + minutes(5), customer="cus_A"))
    assert process() == 2  # one batch: the failure opens, the success (later in event time) resolves
    [anomaly] = resolve_only_anomalies(acme.tenant)
    assert anomaly.status == "resolved"
    # A success with nothing open resolves nothing and opens nothing.
    store(acme.tenant, event("charge.succeeded", T0 + minutes(9), customer="cus_B"))
    process()
    assert [a.customer_id for a in resolve_only_anomalies(acme.tenant)] == [""]


def test_an_anomaly_open_before_the_batch_is_seen_by_has_active_anomaly(acme):
    registry.register(ResolveOnly)
    store(acme.tenant, failed(T0, customer="cus_A"))
    process()
    store(acme.tenant, event("charge.succeeded", T0 + minutes(5), customer="cus_A"))
    process()
    [anomaly] = resolve_only_anomalies(acme.tenant)
    assert anomaly.status == "resolved" and anomaly.resolved_by == "system"


def test_first_in_batch_skips_repeats_within_a_batch_but_not_across_batches(acme):
    registry.register(ResolveOnly)
    ResolveOnly.evaluated.clear()
    store(acme.tenant, failed(T0, customer="cus_A"), failed(T0 + minutes(1), customer="cus_A"),
          failed(T0 + minutes(2), customer="cus_B"))
    process()
    assert len(ResolveOnly.evaluated) == 2  # once for cus_A, once for cus_B
    reprocess_all(acme.tenant)
    assert len(ResolveOnly.evaluated) == 4  # a new batch asks again
