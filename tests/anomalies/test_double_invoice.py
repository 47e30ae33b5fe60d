import calendar
from datetime import UTC, datetime, timedelta

import pytest

from anomalies.detectors.double_invoice import interval_from_length, interval_span
from anomalies.models import DetectorConfig
from tenants.scope import tenant_scope
from tests.anomalies.events import (
    T0,
    TEMPLATE_OF,
    anomalies_of,
    detector_errors_of,
    event,
    process,
    reprocess_all,
    store,
)

pytestmark = pytest.mark.django_db

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def anomalies(tenant, detector="double_invoice"):
    return anomalies_of(tenant, detector)


def no_detector_errors(tenant, detector="double_invoice"):
    return not detector_errors_of(tenant, detector)


def add_months(at: datetime, months: int, anchor_day: int | None = None) -> datetime:
    year, month = divmod(at.month - 1 + months, 12)
    year, month = at.year + year, month + 1
    day = min(anchor_day or at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def invoice(at, invoice_id, event_type="invoice.paid", subscription="sub_A", total=4900, period_end=None,
            reason="subscription_cycle", new_shape=False, event_at=None, livemode=True, **kw):
    """An invoice event of a subscription; its line bills [at, period_end] (one month by default)."""
    period_end = period_end or add_months(at, 1)
    # Types without a fixture of their own (voided, upcoming) are built on invoice.paid.
    template = event_type if event_type in TEMPLATE_OF else "invoice.paid"
    payload = event(template, event_at or at, id=invoice_id, customer="cus_A", subscription=subscription,
                    billing_reason=reason, total=total, amount_due=total, currency="usd",
                    created=int(at.timestamp()), livemode=livemode)
    payload["type"] = event_type
    obj = payload["data"]["object"]
    [line] = obj["lines"]["data"]
    line["period"] = {"start": int(at.timestamp()), "end": int(period_end.timestamp())}
    if new_shape:  # basil: no subscription / paid / charge; lines point at the subscription through parent
        for key in ("subscription", "paid", "charge", "payment_intent"):
            obj.pop(key, None)
        obj["parent"] = {"type": "subscription_details", "subscription_details": {"subscription": subscription}}
        for key in ("subscription", "proration", "proration_details", "type", "price", "plan", "invoice_item"):
            line.pop(key, None)
        line["parent"] = {
            "type": "subscription_item_details",
            "subscription_item_details": {"subscription": subscription, "subscription_item": "si_A",
                                          "proration": False, "invoice_item": None},
        }
        payload["api_version"] = "2025-03-31.basil"
    else:
        line.update(type="subscription", subscription=subscription, proration=False)
    for key, value in kw.items():  # odd payloads: a None removes the field
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    return payload


def lifecycle(at, invoice_id, **kw):
    """created, finalized and paid events of one invoice: one invoice."""
    return [
        invoice(at, invoice_id, "invoice.created", event_at=at, **kw),
        invoice(at, invoice_id, "invoice.finalized", event_at=at + HOUR, **kw),
        invoice(at, invoice_id, "invoice.paid", event_at=at + 2 * HOUR, **kw),
    ]


def sub_update(at, previous_attributes, status="active", subscription="sub_A"):
    return event("customer.subscription.updated", at, id=subscription, customer="cus_A", status=status,
                 previous_attributes=previous_attributes)


def set_thresholds(tenant, **thresholds):
    with tenant_scope(tenant):
        DetectorConfig.objects.create(tenant=tenant, detector="double_invoice", thresholds=thresholds)


def test_interval_arithmetic():
    assert interval_span(("month", 1)) == (28 * 86400, 31 * 86400)
    assert interval_span(("year", 1)) == (365 * 86400, 366 * 86400)
    assert interval_from_length(28 * 86400) == ("month", 1)  # the widest reading of 28 days
    assert interval_from_length(14 * 86400) == ("week", 2)
    assert interval_from_length(91 * 86400) == ("month", 3)
    assert interval_from_length(366 * 86400) == ("year", 1)
    assert interval_from_length(86400) == ("day", 1)
    assert interval_from_length(10 * 86400 + 5 * 3600) is None


def test_two_renewals_within_hours_fire(acme):
    first, second = lifecycle(T0, "in_1"), lifecycle(T0 + 3 * HOUR, "in_2")
    store(acme.tenant, *first, *second)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "high" and anomaly.status == "open"
    assert anomaly.fingerprint == "sub_A" and anomaly.customer_id == "cus_A"
    assert anomaly.title == "Subscription sub_A invoiced twice within 3.0 h (49.00 USD)"
    assert "in_1" in anomaly.summary and "in_2" in anomaly.summary
    assert anomaly.occurrences == 1  # three events per invoice, one invoice each
    assert sorted(anomaly.evidence["event_ids"]) == sorted(p["id"] for p in first + second)
    assert anomaly.evidence["invoice_ids"] == ["in_1", "in_2"]
    assert anomaly.evidence["kind"] == "twice" and anomaly.evidence["gap_hours"] == 3.0
    assert anomaly.evidence["interval"] == "monthly"
    assert anomaly.first_seen_at == anomaly.last_seen_at == T0 + 3 * HOUR
    assert no_detector_errors(acme.tenant)


def test_a_year_of_monthly_renewals_is_quiet_even_on_the_31st(acme):
    start = datetime(2025, 12, 31, 9, tzinfo=UTC)
    events = []
    for n in range(13):
        at = add_months(start, n, anchor_day=31)
        events += lifecycle(at, f"in_{n}", period_end=add_months(start, n + 1, anchor_day=31))
    store(acme.tenant, *events)
    process()
    assert anomalies(acme.tenant) == []
    assert no_detector_errors(acme.tenant)


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        (15 * DAY, "Early renewal invoice for sub_A: 15.0 days after the previous one (monthly plan)"),
        (45 * DAY, "Late renewal invoice for sub_A: 45.0 days after the previous one (monthly plan)"),
        (32 * DAY + 2 * HOUR, "Late renewal invoice for sub_A: 32.1 days after the previous one (monthly plan)"),
        (27 * DAY - 2 * HOUR, "Early renewal invoice for sub_A: 26.9 days after the previous one (monthly plan)"),
    ],
)
def test_renewals_off_the_monthly_schedule_fire(acme, gap, expected):
    store(acme.tenant, invoice(T0, "in_1"), invoice(T0 + gap, "in_2"))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == expected
    assert anomaly.evidence["kind"] == "off_schedule"
    assert anomaly.evidence["expected_days"] == [28.0, 31.0]


@pytest.mark.parametrize("gap", [32 * DAY - HOUR, 27 * DAY + HOUR, 28 * DAY, 31 * DAY])
def test_renewals_just_inside_the_tolerance_stay_quiet(acme, gap):
    store(acme.tenant, invoice(T0, "in_1"), invoice(T0 + gap, "in_2"))
    process()
    assert anomalies(acme.tenant) == []


def test_tolerance_override(acme):
    set_thresholds(acme.tenant, tolerance_hours=72)
    store(acme.tenant, invoice(T0, "in_1"), invoice(T0 + 33 * DAY, "in_2"))
    process()
    assert anomalies(acme.tenant) == []


def test_an_early_weekly_renewal_is_off_schedule_not_twice(acme):
    weekly = dict(period_end=T0 + 7 * DAY)
    store(acme.tenant, invoice(T0, "in_1", **weekly), invoice(T0 + 30 * HOUR, "in_2", period_end=T0 + 8 * DAY))
    process()
    [anomaly] = anomalies(acme.tenant)  # early for a weekly plan, not "twice"
    assert anomaly.evidence["kind"] == "off_schedule"


def test_min_gap_override(acme, globex):
    set_thresholds(acme.tenant, min_gap_hours=48)
    for tenant in (acme.tenant, globex.tenant):
        store(tenant, invoice(T0, "in_1"), invoice(T0 + 30 * HOUR, "in_2"))
    process()
    assert anomalies(acme.tenant)[0].evidence["kind"] == "twice"
    assert anomalies(globex.tenant)[0].evidence["kind"] == "off_schedule"


def test_daily_plans_renew_every_day(acme):
    daily = [invoice(T0 + n * DAY, f"in_{n}", period_end=T0 + (n + 1) * DAY) for n in range(5)]
    store(acme.tenant, *daily)
    process()
    assert anomalies(acme.tenant) == []
    store(acme.tenant, invoice(T0 + 4 * DAY + 6 * HOUR, "in_x", period_end=T0 + 5 * DAY + 6 * HOUR))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["kind"] == "twice"


def test_weekly_and_yearly_plans(acme):
    week = [invoice(T0 + n * 7 * DAY, f"in_w{n}", subscription="sub_W", period_end=T0 + (n + 1) * 7 * DAY)
            for n in range(4)]
    year = [invoice(add_months(T0, 12 * n), f"in_y{n}", subscription="sub_Y", period_end=add_months(T0, 12 * n + 12))
            for n in range(3)]
    store(acme.tenant, *week, *year)
    process()
    assert anomalies(acme.tenant) == []
    store(acme.tenant, invoice(T0 + 30 * DAY, "in_w_late", subscription="sub_W", period_end=T0 + 37 * DAY))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Late renewal invoice for sub_W: 9.0 days after the previous one (weekly plan)"


@pytest.mark.parametrize(
    "second",
    [
        lambda: invoice(T0 + 3 * HOUR, "in_2", reason="subscription_update"),  # a proration
        lambda: invoice(T0 + 3 * HOUR, "in_2", reason="subscription_create"),
        lambda: invoice(T0 + 3 * HOUR, "in_2", reason="manual"),
        lambda: invoice(T0 + 3 * HOUR, "in_2", subscription="sub_B"),  # another subscription
        lambda: invoice(T0 + 3 * HOUR, "in_2", livemode=False),  # test mode
        lambda: invoice(T0 + 3 * HOUR, "in_2", total=0),  # nothing billed
        lambda: invoice(T0 + 3 * HOUR, "in_2", "invoice.voided"),  # already voided
        lambda: invoice(T0 + 3 * HOUR, "in_1", "invoice.payment_succeeded"),  # the same invoice again
        lambda: invoice(T0 + 3 * HOUR, "in_2", "invoice.upcoming"),  # not an invoice that exists
    ],
)
def test_near_misses_stay_quiet(acme, second):
    store(acme.tenant, invoice(T0, "in_1"), second())
    process()
    assert anomalies(acme.tenant) == []
    assert no_detector_errors(acme.tenant)


def test_first_invoice_of_a_subscription_is_not_a_renewal(acme):
    store(acme.tenant, invoice(T0, "in_0", reason="subscription_create"), invoice(T0 + 5 * DAY, "in_1"),
          invoice(add_months(T0 + 5 * DAY, 1), "in_2"))
    process()
    assert anomalies(acme.tenant) == []


def test_a_voided_renewal_still_marks_the_schedule(acme):
    store(acme.tenant, invoice(T0, "in_1"), invoice(add_months(T0, 1), "in_2", "invoice.voided"),
          invoice(add_months(T0, 2), "in_3"))
    process()
    assert anomalies(acme.tenant) == []


def test_billing_anchor_reset_between_renewals_stays_quiet(acme):
    # billing_cycle_anchor=now on day 10: a proration invoice now, the next renewal a month later.
    moved = T0 + 10 * DAY
    store(acme.tenant, invoice(T0, "in_1"),
          sub_update(moved, {"billing_cycle_anchor": int(T0.timestamp())}),
          invoice(add_months(moved, 1), "in_2"))
    process()
    assert anomalies(acme.tenant) == []


def test_proration_invoice_between_renewals_stays_quiet(acme):
    moved = T0 + 10 * DAY
    store(acme.tenant, invoice(T0, "in_1"), invoice(moved, "in_p", reason="subscription_update"),
          invoice(add_months(moved, 1), "in_2"))
    process()
    assert anomalies(acme.tenant) == []


def test_trial_between_renewals_stays_quiet(acme):
    store(acme.tenant, invoice(T0, "in_1"),
          sub_update(T0 + 5 * DAY, {"status": "active", "trial_end": None}, status="trialing"),
          invoice(T0 + 60 * DAY, "in_2"))
    process()
    assert anomalies(acme.tenant) == []


def test_a_late_renewal_without_any_schedule_change_fires(acme):
    # A metadata-only update between them does not excuse the gap.
    store(acme.tenant, invoice(T0, "in_1"), sub_update(T0 + 5 * DAY, {"metadata": {}}),
          invoice(T0 + 60 * DAY, "in_2"))
    process()
    assert len(anomalies(acme.tenant)) == 1


def test_the_earlier_neighbour_arriving_later_is_found(acme):
    store(acme.tenant, invoice(T0 + 3 * HOUR, "in_2"))
    process()
    assert anomalies(acme.tenant) == []
    store(acme.tenant, invoice(T0, "in_1"))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["invoice_ids"] == ["in_1", "in_2"]
    assert anomaly.last_seen_at == T0 + 3 * HOUR


def test_out_of_order_duplicates_and_reprocessing(acme, globex):
    events = [*lifecycle(T0, "in_1"), *lifecycle(T0 + 2 * HOUR, "in_2"), *lifecycle(T0 + 4 * HOUR, "in_3")]
    store(acme.tenant, *events)
    store(globex.tenant, *reversed(events))
    process()
    reprocess_all(acme.tenant)
    reprocess_all(globex.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        assert anomaly.occurrences == 2  # in_2 and in_3 are each one extra renewal
        assert anomaly.first_seen_at == T0 + 2 * HOUR and anomaly.last_seen_at == T0 + 4 * HOUR
        assert len(anomaly.evidence["event_ids"]) == 9


def test_new_api_shape(acme):
    store(acme.tenant, *lifecycle(T0, "in_1", new_shape=True), *lifecycle(T0 + 3 * HOUR, "in_2", new_shape=True))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "sub_A"
    assert anomaly.evidence["interval"] == "monthly"


def test_interval_from_the_subscription_when_lines_say_nothing(acme):
    # Lines without a usable period: the stored subscription's plan (yearly here) decides.
    sub = event("customer.subscription.created", T0 - DAY, id="sub_A", customer="cus_A")
    for item in sub["data"]["object"]["items"]["data"]:
        item["price"]["recurring"]["interval"] = "year"
        item["plan"]["interval"] = "year"
    sub["data"]["object"]["plan"]["interval"] = "year"
    # zero-length line periods
    store(acme.tenant, sub, invoice(T0, "in_1", period_end=T0),
          invoice(T0 + 40 * DAY, "in_2", period_end=T0 + 40 * DAY))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Early renewal invoice for sub_A: 40.0 days after the previous one (yearly plan)"


def test_unknown_interval_only_checks_the_minimum_gap(acme):
    store(acme.tenant, invoice(T0, "in_1", period_end=T0), invoice(T0 + 40 * DAY, "in_2", period_end=T0 + 40 * DAY))
    process()
    assert anomalies(acme.tenant) == []


def test_odd_payloads_are_skipped_not_crashed(acme):
    odd = invoice(T0, "in_1", lines=None, created=None)
    odd2 = invoice(T0 + HOUR, "in_2", lines={"data": ["x", {"period": "y"}]})
    store(acme.tenant, odd, odd2, invoice(T0 + 2 * HOUR, "in_3", subscription=None, parent=None))
    process()
    assert no_detector_errors(acme.tenant)


def test_other_tenants_events_are_never_read(acme, globex):
    store(acme.tenant, invoice(T0, "in_1"))
    store(globex.tenant, invoice(T0 + 3 * HOUR, "in_2"))
    process()
    assert anomalies(acme.tenant) == [] and anomalies(globex.tenant) == []
