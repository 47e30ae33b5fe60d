import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from anomalies import engine
from anomalies.models import DetectorConfig
from anomalies.scans import backtest
from tenants.scope import tenant_scope
from tests.anomalies.events import anomalies_of, event, store

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 2)  # a Monday: the day judged
AS_OF = datetime(2026, 3, 3, 0, 5, tzinfo=UTC)  # just after it, tenant in UTC
OTHER = (10_000, 10_000)  # usual non-renewal charges of a day
RENEWALS = 3  # renewals of 10,000 due every day


def at(day: date, hour: int, minute: int = 0, zone=UTC) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)


def charge(when, amount, currency="usd", **kw):
    return event("charge.succeeded", when, customer="cus_X", amount=amount, currency=currency, **kw)


def renewal(when, sub, amount=10_000, paid=True, currency="usd", shape="old", kind="invoice.finalized", **kw):
    """A renewal invoice falling due at `when` and, if paid, its invoice.paid and charge."""
    fields = {
        "customer": f"cus_{sub}", "billing_reason": "subscription_cycle", "collection_method": "charge_automatically",
        "total": amount, "amount_due": amount, "currency": currency, "status": "open", **kw,
    }
    if shape == "basil":  # from 2025-03-31.basil the subscription is under parent
        fields.update(subscription=None, paid=None, parent={"subscription_details": {"subscription": sub}})
    else:
        fields.update(subscription=sub)
    invoice = event(kind, when, **fields)
    invoice_id = invoice["data"]["object"]["id"]
    if not paid:
        return [invoice, event("invoice.payment_failed", when + timedelta(seconds=10), id=invoice_id,
                               subscription=sub, total=amount, currency=currency, status="open")]
    return [
        invoice,
        charge(when + timedelta(seconds=5), amount, currency, livemode=invoice["livemode"]),
        event("invoice.paid", when + timedelta(seconds=10), id=invoice_id, subscription=sub, total=amount,
              currency=currency, status="paid", livemode=invoice["livemode"]),
    ]


def day_events(day, other=OTHER, renewals=RENEWALS, unpaid=0, currency="usd", livemode=True, zone=UTC,
               shape="old", **kw):
    events = [charge(at(day, 14 + i, zone=zone), amount, currency, livemode=livemode)
              for i, amount in enumerate(other)]
    for n in range(renewals):
        sub = f"sub_{currency}_{day:%m%d}_{n}"
        events += renewal(at(day, 9, n, zone=zone), sub, paid=n >= unpaid, currency=currency, livemode=livemode,
                          shape=shape, **kw)
    return events


def history(days=35, end=DAY, **kw):
    """Steady days before `end`."""
    return [e for k in range(days, 0, -1) for e in day_events(end - timedelta(days=k), **kw)]


def scan(tenant, as_of=AS_OF):
    with tenant_scope(tenant):
        outcome = engine.run_scans(tenant, as_of=as_of, only="revenue_drop")
    assert outcome.errors == []
    return outcome


def anomalies(tenant, **filters):
    return anomalies_of(tenant, "revenue_drop", **filters)


def set_thresholds(tenant, **values):
    with tenant_scope(tenant):
        DetectorConfig.objects.create(tenant=tenant, detector="revenue_drop", thresholds=values)


def test_a_day_with_most_renewals_unpaid_fires(acme):
    store(acme.tenant, *history(), *day_events(DAY, unpaid=2))
    scan(acme.tenant)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "high" and anomaly.status == "open" and anomaly.livemode
    assert anomaly.fingerprint == "usd:2026-03-02"
    assert anomaly.title == "USD revenue on 2026-03-02 40% below expected: 300.00 USD vs 500.00 USD"
    assert "300.00 USD of renewals falling due that day (3 subscription invoices, 100.00 USD of them paid)" in (
        anomaly.summary)
    assert "plus 200.00 USD of usual other revenue (median of the same weekday over the previous 4 weeks)" in (
        anomaly.summary)
    assert "not paid that day: sub_usd_0302_0, sub_usd_0302_1, 200.00 USD in all" in anomaly.summary
    evidence = anomaly.evidence
    assert evidence["actual"] == 30_000 and evidence["expected"] == 50_000
    assert evidence["renewals_due"] == 30_000 and evidence["renewals_paid"] == 10_000
    assert evidence["usual_other"] == 20_000 and evidence["drop"] == 0.4
    assert evidence["z_score"] == -8.0  # 20,000 short against the 5 % floor (2,500) of a perfectly regular history
    assert evidence["residual_days"] == 28 and evidence["history_days"] == 35
    assert evidence["unpaid_subscription_ids"] == ["sub_usd_0302_0", "sub_usd_0302_1"]
    assert len(evidence["event_ids"]) == 2  # the unpaid renewal invoices
    assert anomaly.first_seen_at == anomaly.last_seen_at == datetime(2026, 3, 3, tzinfo=UTC)
    assert anomaly.occurrences == 1


def test_half_the_revenue_missing_is_critical(acme):
    store(acme.tenant, *history(), *day_events(DAY, unpaid=3))
    scan(acme.tenant)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "critical"
    assert anomaly.evidence["drop"] == 0.6


@pytest.mark.parametrize("other, fires", [((12_500,), True), ((12_600,), False)])
def test_the_drop_threshold_is_exact(acme, other, fires):
    # Expected 50,000; 42,500 is exactly 15 % below (z exactly -3 against the floor); 42,600 is 14.8 %.
    store(acme.tenant, *history(), *day_events(DAY, other=other))
    scan(acme.tenant)
    assert len(anomalies(acme.tenant)) == (1 if fires else 0)


def test_a_shortfall_within_the_accounts_usual_variation_is_quiet(acme):
    rng = random.Random(7)
    events = []
    for k in range(35, 0, -1):
        events += day_events(DAY - timedelta(days=k), other=(rng.choice([2_000, 10_000, 20_000, 30_000, 40_000]),))
    store(acme.tenant, *events, *day_events(DAY, other=(2_000,)))
    scan(acme.tenant)
    assert anomalies(acme.tenant) == []  # at least 15 % short, but such days are ordinary here
    set_thresholds(acme.tenant, z_score=-1.0)
    scan(acme.tenant)
    assert len(anomalies(acme.tenant)) == 1


@pytest.mark.parametrize("amount, fires", [(9_999, False), (10_000, True)])
def test_small_expected_amounts_are_not_judged(acme, amount, fires):
    events = [charge(at(DAY - timedelta(days=k), 12), amount) for k in range(35, 0, -1)]
    store(acme.tenant, *events)  # and nothing at all on DAY
    scan(acme.tenant)
    assert [a.severity for a in anomalies(acme.tenant)] == (["critical"] if fires else [])


@pytest.mark.parametrize("days, fires", [(6, False), (7, True)])
def test_short_history_is_quiet(acme, days, fires):
    store(acme.tenant, *history(days=days), *day_events(DAY, unpaid=3))
    scan(acme.tenant)
    assert len(anomalies(acme.tenant)) == (1 if fires else 0)


def weekly(day, weekday_other=(50_000, 50_000), weekend_other=(10_000,)):
    weekend = day.weekday() >= 5
    return day_events(day, other=weekend_other if weekend else weekday_other, renewals=0 if weekend else 2)


def test_a_quiet_weekend_is_not_a_drop(acme):
    saturday = date(2026, 2, 28)
    store(acme.tenant, *[e for k in range(35, -2, -1) for e in weekly(saturday - timedelta(days=k))])
    scan(acme.tenant, as_of=datetime(2026, 3, 1, 0, 5, tzinfo=UTC))  # judges Saturday
    scan(acme.tenant, as_of=datetime(2026, 3, 2, 0, 5, tzinfo=UTC))  # judges Sunday
    assert anomalies(acme.tenant) == []


def test_a_quiet_weekend_in_the_second_week_is_not_a_drop(acme):
    saturday = date(2026, 2, 28)
    store(acme.tenant, *[e for k in range(9, -1, -1) for e in weekly(saturday - timedelta(days=k))])
    scan(acme.tenant, as_of=datetime(2026, 3, 1, 0, 5, tzinfo=UTC))
    assert anomalies(acme.tenant) == []


def test_an_empty_saturday_after_busy_ones_still_fires(acme):
    saturday = date(2026, 2, 28)
    store(acme.tenant, *[e for k in range(35, 0, -1) for e in weekly(saturday - timedelta(days=k))])
    scan(acme.tenant, as_of=datetime(2026, 3, 1, 0, 5, tzinfo=UTC))
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "USD revenue on 2026-02-28 100% below expected: 0.00 USD vs 100.00 USD"
    assert anomaly.evidence["usual_other_method"] == "median of the same weekday over the previous 4 weeks"


def test_a_renewal_anchor_day_followed_by_a_light_day_is_quiet(acme):
    events = history(renewals=1)
    anchor = DAY - timedelta(days=1)
    events = [e for e in events if e["created"] < int(at(anchor, 0).timestamp())]
    events += day_events(anchor, renewals=25)  # the anchor date: 25 renewals
    store(acme.tenant, *events, *day_events(DAY, renewals=1))
    scan(acme.tenant, as_of=at(DAY, 0, 5))  # the anchor day itself
    scan(acme.tenant)  # the light day after it
    assert anomalies(acme.tenant) == []


def test_an_anchor_spike_in_a_short_history_without_invoices_does_not_raise_the_bar(acme):
    # Charges only (the account sends no invoice events): the spike counts as other revenue.
    events = [charge(at(DAY - timedelta(days=k), 12), 20_000) for k in range(15, 0, -1)]
    events.append(charge(at(DAY - timedelta(days=7), 13), 300_000))  # same weekday last week
    store(acme.tenant, *events, charge(at(DAY, 12), 20_000))
    scan(acme.tenant)
    assert anomalies(acme.tenant) == []


def test_another_currency_is_judged_on_its_own(acme):
    store(acme.tenant, *history(), *day_events(DAY, unpaid=3))
    store(acme.tenant, *history(currency="eur"), *day_events(DAY, currency="eur"))
    scan(acme.tenant)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "usd:2026-03-02"


def test_a_drop_in_one_currency_is_not_hidden_or_caused_by_another(acme):
    store(acme.tenant, *history(), *day_events(DAY))
    store(acme.tenant, *history(currency="eur"), *day_events(DAY, currency="eur", unpaid=2))
    scan(acme.tenant)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "eur:2026-03-02"
    assert anomaly.title == "EUR revenue on 2026-03-02 40% below expected: 300.00 EUR vs 500.00 EUR"


def test_test_mode_never_raises_a_live_anomaly(acme):
    store(acme.tenant, *history())  # live: steady, and nothing missing
    store(acme.tenant, *day_events(DAY))
    store(acme.tenant, *history(livemode=False), *day_events(DAY, unpaid=3, livemode=False))
    scan(acme.tenant)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.livemode is False


def test_days_are_local_days_of_the_tenant(acme):
    zone = ZoneInfo("Pacific/Auckland")  # UTC+13 in March: local mornings are the previous UTC day
    acme.tenant.timezone = "Pacific/Auckland"
    acme.tenant.save()
    events = [e for k in range(35, 0, -1) for e in day_events(DAY - timedelta(days=k), zone=zone)]
    store(acme.tenant, *events, *day_events(DAY, unpaid=2, zone=zone))
    scan(acme.tenant, as_of=datetime.combine(DAY + timedelta(days=1), time(0, 5), tzinfo=zone))
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "usd:2026-03-02"
    assert anomaly.evidence["actual"] == 30_000 and anomaly.evidence["timezone"] == "Pacific/Auckland"
    assert anomaly.last_seen_at == datetime(2026, 3, 2, 11, tzinfo=UTC)  # local midnight ending the day


def test_a_scan_before_the_day_is_over_judges_the_day_before(acme):
    store(acme.tenant, *history(), *day_events(DAY, unpaid=3))
    scan(acme.tenant, as_of=at(DAY, 23, 59))
    assert anomalies(acme.tenant) == []


def test_new_api_shape_renewals(acme):
    store(acme.tenant, *history(shape="basil"), *day_events(DAY, unpaid=2, shape="basil"))
    scan(acme.tenant)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["unpaid_subscription_ids"] == ["sub_usd_0302_0", "sub_usd_0302_1"]
    assert anomaly.evidence["renewals_due"] == 30_000


def test_renewals_known_only_from_invoice_created_are_due_an_hour_later(acme):
    store(acme.tenant, *history(kind="invoice.created"))
    late = renewal(at(DAY - timedelta(days=1), 23, 30), "sub_late", paid=False, kind="invoice.created")
    store(acme.tenant, *day_events(DAY, unpaid=2, kind="invoice.created"), *late)
    scan(acme.tenant)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["unpaid_subscription_ids"] == ["sub_late", "sub_usd_0302_0", "sub_usd_0302_1"]
    assert anomaly.evidence["renewals_due"] == 40_000


def test_send_invoice_renewals_are_not_expected_that_day(acme):
    store(acme.tenant, *history(renewals=0, other=(50_000,)))
    store(acme.tenant, *day_events(DAY, other=(50_000,), renewals=0))
    store(acme.tenant, *renewal(at(DAY, 10), "sub_inv", amount=500_000, paid=False, collection_method="send_invoice"))
    scan(acme.tenant)
    assert anomalies(acme.tenant) == []


def test_late_charges_resolve_the_day(acme):
    store(acme.tenant, *history(), *day_events(DAY, other=(), unpaid=0))
    scan(acme.tenant)
    [anomaly] = anomalies(acme.tenant)
    store(acme.tenant, charge(at(DAY, 20), 20_000))  # delivered late
    scan(acme.tenant, as_of=AS_OF + timedelta(hours=1))
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.status == "resolved"
    scan(acme.tenant, as_of=AS_OF + timedelta(hours=2))
    assert len(anomalies(acme.tenant)) == 1


def test_out_of_order_repeated_scans_and_backtests_give_one_anomaly(acme, globex):
    events = history() + day_events(DAY, unpaid=2)
    store(acme.tenant, *events)
    shuffled = list(events)
    random.Random(1).shuffle(shuffled)
    store(globex.tenant, *shuffled)
    for tenant in (acme.tenant, globex.tenant):
        scan(tenant)
        scan(tenant, as_of=AS_OF + timedelta(hours=5))
        with tenant_scope(tenant):
            backtest(tenant, at(DAY - timedelta(days=3), 0), AS_OF + timedelta(hours=12))
            backtest(tenant, at(DAY - timedelta(days=3), 0), AS_OF + timedelta(hours=12))
        [anomaly] = anomalies(tenant)
        assert anomaly.occurrences == 1 and anomaly.status == "open"
        assert anomaly.evidence["actual"] == 30_000


def test_backtest_finds_the_day(acme):
    store(acme.tenant, *history(), *day_events(DAY, unpaid=2), *day_events(DAY + timedelta(days=1)))
    with tenant_scope(acme.tenant):
        backtest(acme.tenant, at(DAY - timedelta(days=35), 9), at(DAY + timedelta(days=1), 16), only="revenue_drop")
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "usd:2026-03-02"


def test_threshold_overrides(acme):
    store(acme.tenant, *history(), *day_events(DAY, unpaid=2))
    set_thresholds(acme.tenant, drop=0.5)
    scan(acme.tenant)
    assert anomalies(acme.tenant) == []
    with tenant_scope(acme.tenant):
        DetectorConfig.objects.filter(detector="revenue_drop").update(thresholds={"critical_drop": 0.4})
    scan(acme.tenant)
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "critical"


def test_other_tenants_events_are_never_read(acme, globex):
    store(acme.tenant, *history())
    store(globex.tenant, *day_events(DAY, unpaid=3))  # globex has no history of its own
    scan(acme.tenant)
    scan(globex.tenant)
    assert anomalies(globex.tenant) == []  # acme's history is not globex's
    [anomaly] = anomalies(acme.tenant)  # and globex's charges on DAY are not acme's
    assert anomaly.evidence["actual"] == 0
