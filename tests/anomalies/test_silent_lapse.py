from datetime import UTC, datetime, timedelta

import pytest

from anomalies.detectors.silent_lapse import add_interval
from anomalies.engine import run_scans
from anomalies.models import DetectorConfig
from anomalies.scans import backtest
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, anomalies_of, detector_errors_of, event, process, reprocess_all, store

pytestmark = pytest.mark.django_db

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
MONTH_END = datetime(2026, 4, 2, 12, tzinfo=UTC)  # T0 + one month
DUE = MONTH_END + 3 * DAY  # one interval + 3 days of grace after the period began


def anomalies(tenant, detector="silent_lapse"):
    return anomalies_of(tenant, detector)


def no_detector_errors(tenant, detector="silent_lapse"):
    return not detector_errors_of(tenant, detector)


def scan(tenant, as_of):
    with tenant_scope(tenant):
        outcome = run_scans(tenant, as_of=as_of, only="silent_lapse")
    assert outcome.errors == []
    return outcome


def subscription(at, event_type="customer.subscription.created", status="active", sub="sub_A", start=None,
                 end=None, new_shape=False, interval="month", unit_amount=1500, livemode=True,
                 previous_attributes=None, **kw):
    """A subscription event; its current period is [start, end] (default [at, at + 1 month])."""
    start = start or at
    end = end or add_interval(start, (interval, 1))
    payload = event(event_type, at, id=sub, customer="cus_A", status=status, livemode=livemode,
                    previous_attributes=previous_attributes, **kw)
    obj = payload["data"]["object"]
    for item in obj["items"]["data"]:
        item["price"]["recurring"]["interval"] = interval
        item["plan"]["interval"] = interval
        item["price"]["unit_amount"] = unit_amount
        item["plan"]["amount"] = unit_amount
    obj["plan"].update(interval=interval, amount=unit_amount)
    if new_shape:  # basil: the period lives on the items; no `discount`, no top-level `plan`
        for key in ("current_period_start", "current_period_end", "discount", "plan"):
            obj.pop(key, None)
        for item in obj["items"]["data"]:
            item["current_period_start"] = int(start.timestamp())
            item["current_period_end"] = int(end.timestamp())
        payload["api_version"] = "2025-03-31.basil"
    else:
        obj["current_period_start"] = int(start.timestamp())
        obj["current_period_end"] = int(end.timestamp())
    return payload


def renewal(at, sub="sub_A", **kw):
    return subscription(at, "customer.subscription.updated", sub=sub,
                        previous_attributes={"current_period_start": int((at - 31 * DAY).timestamp())}, **kw)


def paid(at, invoice_id="in_1", sub="sub_A", event_type="invoice.paid", livemode=True, **kw):
    return event(event_type, at, id=invoice_id, customer="cus_A", subscription=sub, livemode=livemode,
                 billing_reason="subscription_cycle", total=1500, currency="usd", **kw)


def set_thresholds(tenant, **thresholds):
    with tenant_scope(tenant):
        DetectorConfig.objects.create(tenant=tenant, detector="silent_lapse", thresholds=thresholds)


def started(tenant, **kw):
    """A monthly subscription started and paid at T0."""
    store(tenant, subscription(T0, **kw), paid(T0 + timedelta(minutes=5)))
    process()


def test_unpaid_active_subscription_is_flagged_after_interval_plus_grace(acme):
    started(acme.tenant)
    scan(acme.tenant, DUE - HOUR)
    assert anomalies(acme.tenant) == []
    scan(acme.tenant, DUE + HOUR)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "medium" and anomaly.status == "open"
    assert anomaly.fingerprint == "sub_A" and anomaly.customer_id == "cus_A"
    assert anomaly.title == "Active subscription sub_A unpaid since 2026-03-02 (15.00 USD monthly)"
    assert "2026-04-05 12:05 UTC" in anomaly.summary  # due: last payment + one month + 3 days
    # The clock starts at the last payment (5 minutes after the period began).
    assert anomaly.first_seen_at == anomaly.last_seen_at == DUE + 5 * timedelta(minutes=1)
    assert anomaly.evidence["interval"] == "monthly" and anomaly.evidence["grace_days"] == 3
    assert anomaly.evidence["last_payment"] == (T0 + timedelta(minutes=5)).isoformat()
    assert len(anomaly.evidence["event_ids"]) == 1
    assert no_detector_errors(acme.tenant)


def test_repeated_scans_count_one_lapse_once(acme):
    started(acme.tenant)
    for days in (5, 6, 10, 20):
        scan(acme.tenant, DUE + days * DAY)
    reprocess_all(acme.tenant)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.occurrences == 1 and anomaly.status == "open"


def test_never_paid_subscription_counts_from_its_period_start(acme):
    store(acme.tenant, subscription(T0))
    process()
    scan(acme.tenant, DUE + HOUR)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.last_seen_at == DUE
    assert "its current period began on 2026-03-02" in anomaly.summary


def test_renewed_and_paid_subscription_stays_quiet(acme):
    started(acme.tenant)
    store(acme.tenant, renewal(MONTH_END), paid(MONTH_END + HOUR, "in_2"))
    process()
    scan(acme.tenant, MONTH_END + 20 * DAY)
    assert anomalies(acme.tenant) == []


def test_payments_without_renewal_events_keep_it_alive(acme):
    started(acme.tenant)
    store(acme.tenant, paid(MONTH_END, "in_2", event_type="invoice.payment_succeeded"))
    process()
    scan(acme.tenant, MONTH_END + 20 * DAY)
    assert anomalies(acme.tenant) == []


def test_a_charge_for_one_of_its_invoices_counts_as_payment(acme):
    started(acme.tenant)
    created = paid(MONTH_END, "in_2")
    created["type"] = "invoice.created"
    charge = event("charge.succeeded", MONTH_END + HOUR, customer="cus_A", amount=1500, currency="usd",
                   invoice="in_2")
    store(acme.tenant, created, charge)
    process()
    scan(acme.tenant, MONTH_END + 20 * DAY)
    assert anomalies(acme.tenant) == []


def test_a_charge_for_another_invoice_does_not(acme):
    started(acme.tenant)
    store(acme.tenant, event("charge.succeeded", MONTH_END + HOUR, customer="cus_A", amount=1500, currency="usd",
                             invoice="in_other"))
    process()
    scan(acme.tenant, MONTH_END + 20 * DAY)
    assert len(anomalies(acme.tenant)) == 1


@pytest.mark.parametrize(
    "latest",
    [
        lambda: subscription(T0 + DAY, "customer.subscription.updated", status="trialing"),
        lambda: subscription(T0 + DAY, "customer.subscription.deleted", status="canceled"),
        lambda: subscription(T0 + DAY, "customer.subscription.updated", status="past_due"),
        lambda: subscription(T0 + DAY, "customer.subscription.updated", status="unpaid"),
        lambda: subscription(T0 + DAY, "customer.subscription.updated", status="paused"),
        lambda: subscription(T0 + DAY, "customer.subscription.updated",
                             pause_collection={"behavior": "void", "resumes_at": None}),
        lambda: subscription(T0 + DAY, "customer.subscription.updated",
                             discount={"object": "discount", "coupon": {"id": "FREE", "percent_off": 100}}),
        lambda: subscription(T0 + DAY, "customer.subscription.updated", new_shape=True,
                             discounts=[{"object": "discount", "coupon": {"id": "FREE", "percent_off": 100.0}}]),
        lambda: subscription(T0 + DAY, "customer.subscription.updated", unit_amount=0),  # a free plan
        lambda: subscription(T0 + DAY, "customer.subscription.updated", interval="year"),  # not due yet
        lambda: subscription(T0 + DAY, "customer.subscription.updated", collection_method="send_invoice",
                             days_until_due=30),  # 30 days to pay
    ],
)
def test_subscriptions_that_need_not_have_paid_stay_quiet(acme, latest):
    started(acme.tenant)
    store(acme.tenant, latest())
    process()
    scan(acme.tenant, DUE + 5 * DAY)
    assert anomalies(acme.tenant) == []


def test_a_partial_coupon_still_lapses(acme):
    started(acme.tenant)
    store(acme.tenant, subscription(T0 + DAY, "customer.subscription.updated",
                                    discount={"object": "discount", "coupon": {"id": "HALF", "percent_off": 50}}))
    process()
    scan(acme.tenant, DUE + 5 * DAY)
    assert len(anomalies(acme.tenant)) == 1


def test_latest_status_decides_and_only_up_to_as_of(acme):
    started(acme.tenant)
    # canceled, but only after the scan's time: as of the scan it was active and lapsed.
    store(acme.tenant, subscription(DUE + 10 * DAY, "customer.subscription.deleted", status="canceled"),
          paid(DUE + 10 * DAY, "in_late"))
    process()
    scan(acme.tenant, DUE + 5 * DAY)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.status == "open"


def test_new_api_shape(acme):
    started(acme.tenant, new_shape=True)
    scan(acme.tenant, DUE + HOUR)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Active subscription sub_A unpaid since 2026-03-02 (15.00 USD monthly)"


def test_grace_days_override(acme):
    set_thresholds(acme.tenant, grace_days=10)
    started(acme.tenant)
    scan(acme.tenant, DUE + 5 * DAY)
    assert anomalies(acme.tenant) == []
    scan(acme.tenant, DUE + 8 * DAY)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["grace_days"] == 10


def test_a_payment_resolves_the_lapse(acme):
    started(acme.tenant)
    scan(acme.tenant, DUE + DAY)
    store(acme.tenant, paid(DUE + 2 * DAY, "in_2"))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.status == "resolved"
    scan(acme.tenant, DUE + 3 * DAY)
    assert [a.status for a in anomalies(acme.tenant)] == ["resolved"]


def test_a_payment_delivered_after_the_scan_that_flagged_it_resolves_it(acme):
    started(acme.tenant)
    scan(acme.tenant, DUE + DAY)  # the renewal payment of 2 April had not arrived yet
    store(acme.tenant, paid(MONTH_END + HOUR, "in_2"))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.status == "resolved"


def test_reprocessing_an_old_payment_does_not_resolve_a_real_lapse(acme):
    started(acme.tenant)
    scan(acme.tenant, DUE + DAY)
    reprocess_all(acme.tenant)  # replays the payment of 2 March
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.status == "open"


def test_backtest_opens_and_resolves_like_live(acme):
    # Imported history: paid in March, nothing in April, paid again on 20 April.
    started(acme.tenant)
    store(acme.tenant, paid(DUE + 15 * DAY, "in_2"))
    process()  # the payment is processed before the backtest raises anything
    with tenant_scope(acme.tenant):
        backtest(acme.tenant, T0, DUE + 30 * DAY, only="silent_lapse")
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.status == "resolved"
    assert anomaly.occurrences == 1
    assert anomaly.first_seen_at == DUE + timedelta(minutes=5)


def test_backtest_of_a_lapse_that_continues(acme):
    started(acme.tenant)
    with tenant_scope(acme.tenant):
        backtest(acme.tenant, T0, DUE + 30 * DAY, only="silent_lapse")
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.status == "open" and anomaly.occurrences == 1


def test_a_long_lapse_after_a_new_payment_is_a_new_occurrence(acme):
    started(acme.tenant)
    scan(acme.tenant, DUE + DAY)
    store(acme.tenant, paid(DUE + 2 * DAY, "in_2"))
    process()
    scan(acme.tenant, DUE + 40 * DAY)
    first, second = anomalies(acme.tenant)
    assert first.status == "resolved" and second.status == "open"


def test_test_mode_is_scanned_on_its_own(acme):
    store(acme.tenant, subscription(T0, livemode=False), paid(T0, livemode=False),
          subscription(T0, sub="sub_L"), paid(T0, "in_L", sub="sub_L"), paid(MONTH_END, "in_L2", sub="sub_L"))
    process()
    scan(acme.tenant, DUE + DAY)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.livemode is False and anomaly.fingerprint == "sub_A"


def test_a_test_mode_payment_does_not_keep_a_live_subscription_alive(acme):
    started(acme.tenant)
    store(acme.tenant, paid(MONTH_END, "in_t", livemode=False))
    process()
    scan(acme.tenant, DUE + DAY)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.livemode is True


def test_other_tenants_payments_are_never_read(acme, globex):
    started(acme.tenant)
    store(globex.tenant, paid(MONTH_END, "in_2"))  # the same subscription id elsewhere
    process()
    scan(acme.tenant, DUE + DAY)
    scan(globex.tenant, DUE + DAY)
    assert len(anomalies(acme.tenant)) == 1 and anomalies(globex.tenant) == []


def test_subscriptions_quiet_for_over_400_days_are_not_examined(acme):
    started(acme.tenant)
    scan(acme.tenant, T0 + 401 * DAY)
    assert anomalies(acme.tenant) == []


def test_odd_payloads_are_skipped_not_crashed(acme):
    odd = subscription(T0, sub="sub_odd")
    for key in ("items", "plan"):
        del odd["data"]["object"][key]
    odd2 = subscription(T0, sub="sub_odd2", current_period_start=None, current_period_end=None)
    odd2["data"]["object"]["current_period_start"] = "soon"
    store(acme.tenant, odd, odd2, paid(T0, "in_x", sub="sub_odd"))
    process()
    scan(acme.tenant, DUE + DAY)
    assert anomalies(acme.tenant) == []
    assert no_detector_errors(acme.tenant)
