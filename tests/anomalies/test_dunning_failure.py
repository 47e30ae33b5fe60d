from datetime import timedelta

import pytest

from anomalies.models import DetectorConfig
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, anomalies_of, detector_errors_of, event, minutes, process, reprocess_all, store

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def anomalies(tenant, detector="dunning_failure"):
    return anomalies_of(tenant, detector)


def no_detector_errors(tenant, detector="dunning_failure"):
    return not detector_errors_of(tenant, detector)


def failed(at, invoice_id="in_A", subscription="sub_A", attempts=4, retry_at=None, **kw):
    """invoice.payment_failed; the fixture's next_payment_attempt is null unless retry_at is given."""
    fields = dict(
        id=invoice_id, customer="cus_A", subscription=subscription, attempt_count=attempts,
        billing_reason="subscription_cycle", amount_due=4900, total=4900, currency="usd",
    )
    fields.update(kw)
    if retry_at is not None:
        fields["next_payment_attempt"] = int(retry_at.timestamp())
    return event("invoice.payment_failed", at, **fields)


def paid(at, invoice_id="in_A", subscription="sub_A", **kw):
    return event("invoice.paid", at, id=invoice_id, customer="cus_A", subscription=subscription,
                 billing_reason="subscription_cycle", total=4900, currency="usd", **kw)


def invoice_event(event_type, at, invoice_id="in_A", **kw):
    """An invoice event of a type without its own fixture (voided, marked_uncollectible)."""
    payload = paid(at, invoice_id, **kw)
    payload["type"] = event_type
    payload["data"]["object"].update(paid=False, status="void" if event_type == "invoice.voided" else "uncollectible")
    return payload


def sub_event(event_type, at, status, subscription="sub_A", previous_attributes=None, **kw):
    fields = dict(id=subscription, customer="cus_A", status=status, latest_invoice="in_A")
    fields.update(kw)
    return event(event_type, at, previous_attributes=previous_attributes, **fields)


def set_thresholds(tenant, **thresholds):
    with tenant_scope(tenant):
        DetectorConfig.objects.create(tenant=tenant, detector="dunning_failure", thresholds=thresholds)


# --- final failure ----------------------------------------------------------------


def test_final_failed_attempt_fires(acme):
    final = failed(T0)
    store(acme.tenant, final)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "high" and anomaly.status == "open"
    assert anomaly.fingerprint == "subscription:sub_A"
    assert anomaly.customer_id == "cus_A"
    assert anomaly.title == "Final payment attempt failed for invoice in_A (49.00 USD)"
    assert "attempt 4" in anomaly.summary and "sub_A" in anomaly.summary
    assert anomaly.evidence["event_ids"] == [final["id"]]
    assert anomaly.evidence["attempt_count"] == 4 and anomaly.evidence["amount_due"] == 4900
    assert anomaly.first_seen_at == anomaly.last_seen_at == T0
    assert no_detector_errors(acme.tenant)


def test_invoice_outside_a_subscription_has_an_invoice_fingerprint(acme):
    store(acme.tenant, failed(T0, subscription=None, billing_reason="manual", auto_advance=True))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "invoice:in_A"


def test_new_api_shape_subscription_under_parent(acme):
    payload = failed(
        T0, subscription=None, charge=None, payment_intent=None, paid=None,
        parent={"type": "subscription_details", "subscription_details": {"subscription": "sub_NEW"}},
    )
    payload["api_version"] = "2025-03-31.basil"
    store(acme.tenant, payload)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "subscription:sub_NEW"


def without_next_attempt(payload):
    del payload["data"]["object"]["next_payment_attempt"]
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        lambda: failed(T0, retry_at=T0 + 3 * DAY),  # a retry is scheduled
        lambda: without_next_attempt(failed(T0)),  # old payload: cannot tell, never a final failure
        lambda: failed(T0, attempts=1),  # just under min_attempts
        lambda: failed(T0, attempts=None),
        lambda: failed(T0, collection_method="send_invoice"),
        lambda: failed(T0, billing_reason="subscription_create"),  # a failed sign-up
        lambda: failed(T0, status="void"),
        lambda: failed(T0, paid=True, status="paid"),
        lambda: failed(T0, livemode=False),  # checked for live below
    ],
)
def test_failures_that_are_not_final_stay_quiet(acme, payload):
    store(acme.tenant, payload())
    process()
    assert [a for a in anomalies(acme.tenant) if a.livemode] == []
    assert no_detector_errors(acme.tenant)


def test_test_mode_is_its_own_world(acme):
    store(acme.tenant, failed(T0, livemode=False))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.livemode is False


def test_min_attempts_override(acme):
    set_thresholds(acme.tenant, min_attempts=1)
    store(acme.tenant, failed(T0, attempts=1))
    process()
    assert len(anomalies(acme.tenant)) == 1


# --- unpaid ---------------------------------------------------------------------


def test_subscription_moving_to_unpaid_fires(acme):
    failure = failed(T0 - DAY, retry_at=T0)
    update = sub_event("customer.subscription.updated", T0, "unpaid", previous_attributes={"status": "past_due"})
    store(acme.tenant, failure, update)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "subscription:sub_A" and anomaly.severity == "high"
    assert anomaly.title == "Subscription sub_A became unpaid"
    assert "in_A (49.00 USD)" in anomaly.summary
    assert anomaly.evidence["event_ids"] == [failure["id"], update["id"]]
    assert anomaly.evidence["stage"] == "unpaid"
    assert anomaly.last_seen_at == T0


def test_unpaid_without_previous_attributes_fires_once(acme):
    store(
        acme.tenant,
        sub_event("customer.subscription.updated", T0, "unpaid"),
        sub_event("customer.subscription.updated", T0 + minutes(5), "unpaid"),  # same episode
    )
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.occurrences == 1


@pytest.mark.parametrize(
    "previous",
    [{"status": "unpaid"}, {"metadata": {"plan": "gold"}}],  # already unpaid; status did not change
)
def test_updates_of_an_unpaid_subscription_stay_quiet(acme, previous):
    store(acme.tenant, sub_event("customer.subscription.updated", T0, "unpaid", previous_attributes=previous))
    process()
    assert anomalies(acme.tenant) == []


def test_past_due_is_not_unpaid(acme):
    store(acme.tenant, sub_event("customer.subscription.updated", T0, "past_due",
                                 previous_attributes={"status": "active"}))
    process()
    assert anomalies(acme.tenant) == []


def test_unpaid_new_api_shape_without_latest_invoice(acme):
    # basil: periods on the items; no latest_invoice to key on, the period keys the occurrence.
    payload = sub_event("customer.subscription.updated", T0, "unpaid", latest_invoice=None,
                        current_period_start=None, current_period_end=None)
    for item in payload["data"]["object"]["items"]["data"]:
        item["current_period_start"] = int((T0 - 5 * DAY).timestamp())
        item["current_period_end"] = int((T0 + 25 * DAY).timestamp())
    again = dict(payload, id="evt_other")
    store(acme.tenant, payload, again)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.occurrences == 1
    assert anomaly.title == "Subscription sub_A became unpaid"


# --- canceled with an unpaid invoice -----------------------------------------------


def test_canceled_with_a_failed_invoice_fires(acme):
    failure = failed(T0 - 2 * DAY, attempts=1, retry_at=T0 + DAY)  # not final by itself
    cancel = sub_event("customer.subscription.deleted", T0, "canceled")
    store(acme.tenant, failure, cancel)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Subscription sub_A canceled with invoice in_A unpaid (49.00 USD)"
    assert anomaly.evidence["event_ids"] == [failure["id"], cancel["id"]]
    assert anomaly.evidence["stage"] == "canceled_unpaid"
    assert anomaly.last_seen_at == T0
    assert anomaly.customer_id == "cus_A"


def test_updated_to_canceled_counts_too(acme):
    store(acme.tenant, failed(T0 - DAY, attempts=1, retry_at=T0),
          sub_event("customer.subscription.updated", T0, "canceled", previous_attributes={"status": "past_due"}))
    process()
    assert len(anomalies(acme.tenant)) == 1


def test_uncollectible_invoice_counts_as_unpaid(acme):
    failure = failed(T0 - 3 * DAY, attempts=1, retry_at=T0)
    mark = invoice_event("invoice.marked_uncollectible", T0 - DAY)
    store(acme.tenant, failure, mark, sub_event("customer.subscription.deleted", T0, "canceled"))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert "marked uncollectible" in anomaly.summary


@pytest.mark.parametrize(
    "before",
    [
        lambda: [failed(T0 - 3 * DAY, attempts=1, retry_at=T0), paid(T0 - DAY)],  # paid on retry
        lambda: [failed(T0 - 3 * DAY, attempts=1, retry_at=T0),
                 invoice_event("invoice.voided", T0 - DAY)],
        lambda: [paid(T0 - DAY)],
        lambda: [],  # nothing known about its invoices
        lambda: [failed(T0 - 91 * DAY, attempts=1, retry_at=T0)],  # older than the lookback
        lambda: [failed(T0 - 3 * DAY, attempts=1, retry_at=T0, subscription="sub_B")],  # another subscription
        lambda: [failed(T0 - 3 * DAY, attempts=1, retry_at=T0, billing_reason="subscription_create")],
        lambda: [failed(T0 - 3 * DAY, attempts=1, retry_at=T0, livemode=False)],
    ],
)
def test_cancellations_without_an_unpaid_invoice_stay_quiet(acme, before):
    store(acme.tenant, *before(), sub_event("customer.subscription.deleted", T0, "canceled"))
    process()
    assert anomalies(acme.tenant) == []


def test_payment_and_failure_in_the_same_second_count_as_paid(acme):
    store(acme.tenant, failed(T0 - DAY, attempts=1, retry_at=T0), paid(T0 - DAY),
          sub_event("customer.subscription.deleted", T0, "canceled"))
    process()
    assert anomalies(acme.tenant) == []


def test_lookback_override(acme):
    set_thresholds(acme.tenant, unpaid_lookback_days=200)
    store(acme.tenant, failed(T0 - 150 * DAY, attempts=1, retry_at=T0),
          sub_event("customer.subscription.deleted", T0, "canceled"))
    process()
    assert len(anomalies(acme.tenant)) == 1


def test_failure_arriving_after_the_cancellation(acme):
    failure = failed(T0 - 2 * DAY, attempts=1, retry_at=T0 + DAY)
    cancel = sub_event("customer.subscription.deleted", T0, "canceled")
    store(acme.tenant, cancel)
    process()
    assert anomalies(acme.tenant) == []
    store(acme.tenant, failure)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["event_ids"] == [failure["id"], cancel["id"]]
    assert anomaly.last_seen_at == T0


# --- one incident, any order ------------------------------------------------------------


def incident():
    return [
        failed(T0 - 20 * DAY, attempts=1, retry_at=T0 - 17 * DAY),
        failed(T0 - 10 * DAY, attempts=4),  # final
        sub_event("customer.subscription.updated", T0 - 10 * DAY + minutes(1), "unpaid",
                  previous_attributes={"status": "past_due"}),
        sub_event("customer.subscription.deleted", T0, "canceled"),
    ]


def test_one_incident_is_one_anomaly_with_a_stage_per_occurrence(acme, globex):
    events = incident()
    store(acme.tenant, *events)
    store(globex.tenant, *reversed(events))
    process()
    reprocess_all(acme.tenant)
    reprocess_all(globex.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        assert anomaly.occurrences == 3  # final failure, unpaid, canceled
        assert anomaly.first_seen_at == T0 - 10 * DAY and anomaly.last_seen_at == T0
        assert anomaly.title == "Subscription sub_A canceled with invoice in_A unpaid (49.00 USD)"
        assert no_detector_errors(tenant)


def test_one_by_one_as_they_arrive(acme):
    for payload in incident():
        store(acme.tenant, payload)
        process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.occurrences == 3


def test_other_tenants_events_are_never_read(acme, globex):
    store(globex.tenant, failed(T0 - DAY, attempts=1, retry_at=T0))
    store(acme.tenant, sub_event("customer.subscription.deleted", T0, "canceled"))
    process()
    assert anomalies(acme.tenant) == [] and anomalies(globex.tenant) == []


def test_odd_payloads_are_skipped_not_crashed(acme):
    odd = failed(T0, attempts="4", customer=None, subscription=None, amount_due=None, total=None, currency=None)
    store(acme.tenant, odd, sub_event("customer.subscription.deleted", T0, None, latest_invoice=None))
    process()
    assert anomalies(acme.tenant) == []
    assert no_detector_errors(acme.tenant)
