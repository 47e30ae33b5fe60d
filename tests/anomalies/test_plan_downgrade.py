import random
from datetime import timedelta

import pytest

from anomalies.detectors.plan_downgrade import monthly_change
from anomalies.models import DetectorConfig
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, anomalies_of, event, process, reprocess_all, store

pytestmark = pytest.mark.django_db

DAYS = timedelta(days=1)


def item(unit_amount, quantity=1, interval="month", currency="usd", basil=False):
    found = {
        "id": "si_1", "object": "subscription_item", "quantity": quantity,
        "price": {"id": "price_1", "object": "price", "currency": currency, "unit_amount": unit_amount,
                  "type": "recurring", "recurring": {"interval": interval, "interval_count": 1}},
        "plan": {"id": "price_1", "object": "plan", "amount": unit_amount, "currency": currency,
                 "interval": interval, "interval_count": 1},
    }
    if basil:  # basil moved the period onto the items
        found.update(current_period_start=1772400000, current_period_end=1775078400)
    return found


def plan(unit_amount, interval="month", currency="usd"):
    return item(unit_amount, interval=interval, currency=currency)["plan"]


def updated(at, now, before, *, sub="sub_A", customer="cus_A", shape="items", **kw):
    """A customer.subscription.updated from `before` to `now`, each (unit_amount, quantity[, interval])."""
    unit, quantity, *rest = now
    interval = rest[0] if rest else "month"
    currency = kw.pop("currency", "usd")
    was_unit, was_quantity, *was_rest = before
    was_interval = was_rest[0] if was_rest else "month"
    basil = shape == "basil"
    fields = {"id": sub, "customer": customer,
              "items": {"object": "list", "data": [item(unit, quantity, interval, currency, basil)]}}
    if basil:  # no single-plan fields and no subscription-level period any more
        fields.update(plan=None, quantity=None, current_period_start=None, current_period_end=None)
    else:
        fields.update(plan=plan(unit, interval, currency), quantity=quantity)
    if shape == "legacy":  # only the single-plan fields are listed as changed
        previous = {}
        if was_unit != unit or was_interval != interval:
            previous["plan"] = plan(was_unit, was_interval, currency)
        if was_quantity != quantity:
            previous["quantity"] = was_quantity
    else:
        previous = {"items": {"object": "list", "data": [item(was_unit, was_quantity, was_interval, currency, basil)]}}
        if shape == "items":
            previous.update(plan=plan(was_unit, was_interval, currency), quantity=was_quantity)
    return event("customer.subscription.updated", at, previous_attributes=previous, **fields, **kw)


def anomalies(tenant):
    return anomalies_of(tenant, "plan_downgrade")


def test_a_large_downgrade_fires(acme):
    downgrade = updated(T0, now=(40_000, 1), before=(100_000, 1))
    store(acme.tenant, downgrade)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "medium" and anomaly.status == "open"
    assert anomaly.fingerprint == "usd:sub_A" and anomaly.customer_id == "cus_A"
    assert anomaly.title == "Downgrade of sub_A loses 600.00 USD/month"
    assert "went from 1,000.00 USD to 400.00 USD a month" in anomaly.summary
    assert anomaly.evidence == {
        "subscription_id": "sub_A", "currency": "usd", "monthly_before": 100_000, "monthly_after": 40_000,
        "monthly_loss": 60_000, "event_ids": [downgrade["id"]],
    }
    assert anomaly.first_seen_at == T0 and anomaly.occurrences == 1


@pytest.mark.parametrize("now, fires", [((50_000, 1), True), ((50_001, 1), False)])
def test_the_loss_threshold_is_exact(acme, now, fires):
    store(acme.tenant, updated(T0, now=now, before=(100_000, 1)))
    process()
    assert len(anomalies(acme.tenant)) == (1 if fires else 0)


@pytest.mark.parametrize("shape", ["items", "legacy", "basil"])
def test_fewer_seats_in_every_shape(acme, shape):
    store(acme.tenant, updated(T0, now=(10_000, 4), before=(10_000, 10), shape=shape))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["monthly_before"] == 100_000 and anomaly.evidence["monthly_loss"] == 60_000


@pytest.mark.parametrize("shape", ["items", "legacy", "basil"])
def test_a_cheaper_plan_in_every_shape(acme, shape):
    store(acme.tenant, updated(T0, now=(40_000, 1), before=(100_000, 1), shape=shape))
    process()
    assert [a.title for a in anomalies(acme.tenant)] == ["Downgrade of sub_A loses 600.00 USD/month"]


@pytest.mark.parametrize(
    "payload",
    [
        lambda: updated(T0, now=(100_000, 1), before=(40_000, 1)),  # an upgrade
        lambda: updated(T0, now=(40_000, 1), before=(40_000, 1), shape="basil"),  # a basil renewal: periods only
        lambda: updated(T0, now=(1_200_000, 1, "year"), before=(100_000, 1, "month")),  # same worth, yearly
        lambda: updated(T0, now=(110_000, 1, "year"), before=(10_000, 1, "month")),  # 8.33 a month less
        lambda: updated(T0, now=(100, 1), before=(49_000, 1)),  # 489.00 a month less: under the threshold
        lambda: event("customer.subscription.updated", T0, customer="cus_A",
                      previous_attributes={"status": "trialing"}),  # status change only
        lambda: event("customer.subscription.updated", T0, customer="cus_A"),  # no previous_attributes
        lambda: updated(T0, now=(40_000, 1), before=(100_000, 1), livemode=False),  # test mode: its own world
    ],
)
def test_ordinary_updates_stay_quiet(acme, payload):
    store(acme.tenant, payload())
    process()
    assert [a for a in anomalies(acme.tenant) if a.livemode] == []


def test_test_mode_downgrade_is_a_test_mode_anomaly(acme):
    store(acme.tenant, updated(T0, now=(40_000, 1), before=(100_000, 1), livemode=False))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.livemode is False


def test_yearly_to_monthly_is_normalised(acme):
    store(acme.tenant, updated(T0, now=(40_000, 1, "month"), before=(1_200_000, 1, "year")))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["monthly_before"] == 100_000 and anomaly.evidence["monthly_loss"] == 60_000


@pytest.mark.parametrize(
    "previous",
    [
        {"items": "garbage"},
        {"items": {"data": [{"price": None, "quantity": "three"}]}},
        {"plan": None},
        {"quantity": None, "items": None},
    ],
)
def test_odd_payloads_are_skipped(acme, previous):
    store(acme.tenant, event("customer.subscription.updated", T0, previous_attributes=previous))
    process()
    assert anomalies(acme.tenant) == []
    with tenant_scope(acme.tenant):
        from webhooks.models import StripeEvent

        [errors] = [e.detector_errors for e in StripeEvent.objects.all()]
    assert [e for e in errors if e["detector"] == "plan_downgrade"] == []


def test_several_items_with_only_single_plan_fields_cannot_be_judged():
    payload = updated(T0, now=(40_000, 1), before=(100_000, 1), shape="legacy")
    payload["data"]["object"]["items"]["data"].append(item(5_000))
    assert monthly_change(payload) is None


# --- bursts -----------------------------------------------------------------


def small(at, n, currency="usd", **kw):
    """A small downgrade (10.00 a month less) of subscription n."""
    return updated(at, now=(9_000, 1), before=(10_000, 1), sub=f"sub_{currency}_{n}", customer=f"cus_{n}",
                   currency=currency, **kw)


def weekly_history(weeks=9, per_week=1, currency="usd", **kw):
    return [small(T0 - timedelta(weeks=w, days=d), f"h{w}_{d}", currency, **kw)
            for w in range(weeks, 0, -1) for d in range(per_week)]


def burst(count, currency="usd", **kw):
    return [small(T0 + timedelta(hours=6 * k), f"b{k}", currency, **kw) for k in range(count)]


def test_a_burst_of_downgrades_fires(acme):
    history, recent = weekly_history(), burst(5)
    store(acme.tenant, *history, *recent)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.fingerprint == "burst:2026-W10:usd"
    assert anomaly.severity == "medium"
    # 5 in the 7 days up to the 5th (last week's one is 7 days before the 1st), usually 8 in 8 weeks.
    assert anomaly.title == "5 downgrades in 7 days (USD), usually 1.0 a week"
    assert anomaly.evidence["downgrades"] == 5 and anomaly.evidence["baseline_weeks"] == 8
    assert anomaly.evidence["monthly_loss"] == 5_000
    assert anomaly.evidence["subscription_ids"] == [f"sub_usd_b{k}" for k in range(5)]
    assert anomaly.evidence["event_ids"] == [e["id"] for e in recent]
    assert "were downgraded in the 7 days up to 2026-03-03 12:00 UTC" in anomaly.summary
    assert anomaly.occurrences == 1
    assert anomaly.last_seen_at == T0 + timedelta(hours=24)


@pytest.mark.parametrize("count, fires", [(5, False), (6, True)])
def test_the_weekly_multiple_is_exact(acme, count, fires):
    # Usually 2 a week (16 in the 8 weeks before): a burst needs 3 × 2 = 6.
    store(acme.tenant, *weekly_history(per_week=2), *burst(count))
    process()
    assert len(anomalies(acme.tenant)) == (1 if fires else 0)


@pytest.mark.parametrize("count, fires", [(4, False), (5, True)])
def test_the_minimum_count_is_exact(acme, count, fires):
    # No downgrade at all for 9 weeks: the usual count is 0, the minimum decides.
    store(acme.tenant, small(T0 - timedelta(weeks=9), "first"), *burst(count))
    process()
    assert len(anomalies(acme.tenant)) == (1 if fires else 0)


def test_a_burst_needs_two_weeks_of_history(acme):
    store(acme.tenant, small(T0 - timedelta(days=13), "first"), *burst(8))
    process()
    assert anomalies(acme.tenant) == []


def test_another_currency_does_not_add_to_a_burst(acme):
    store(acme.tenant, *weekly_history(), *burst(3), *burst(3, currency="eur"))
    process()
    assert anomalies(acme.tenant) == []


def test_burst_in_test_mode_stays_in_test_mode(acme):
    store(acme.tenant, *weekly_history(), *burst(5, livemode=False))
    process()
    assert anomalies(acme.tenant) == []


def test_out_of_order_and_reprocessing_give_the_same_burst(acme, globex):
    events = weekly_history() + burst(7)
    store(acme.tenant, *events)
    shuffled = list(events)
    random.Random(3).shuffle(shuffled)
    store(globex.tenant, *shuffled)
    process()
    reprocess_all(acme.tenant)
    reprocess_all(globex.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        assert anomaly.occurrences == 3  # the 5th, 6th and 7th downgrades each met the rule
        assert anomaly.title == "7 downgrades in 7 days (USD), usually 1.0 a week"
        assert anomaly.last_seen_at == T0 + timedelta(hours=36)


def test_threshold_overrides(acme):
    with tenant_scope(acme.tenant):
        DetectorConfig.objects.create(
            tenant=acme.tenant, detector="plan_downgrade", thresholds={"min_monthly_loss": 70_000, "min_downgrades": 8}
        )
    store(acme.tenant, updated(T0, now=(40_000, 1), before=(100_000, 1), sub="sub_big"), *weekly_history(),
          *burst(6))
    process()
    assert anomalies(acme.tenant) == []


def test_other_tenants_downgrades_are_never_read(acme, globex):
    store(globex.tenant, *weekly_history(), *burst(4))
    store(acme.tenant, *weekly_history(), small(T0 + timedelta(hours=30), "only"))
    process()
    assert anomalies(acme.tenant) == [] and anomalies(globex.tenant) == []


def test_a_burst_counts_downgrades_of_every_shape(acme):
    shapes = ["items", "legacy", "basil", "legacy", "basil"]
    store(acme.tenant, *weekly_history(), *[
        updated(T0 + timedelta(hours=6 * k), now=(9_000, 1), before=(10_000, 2), sub=f"sub_{k}", shape=shape)
        for k, shape in enumerate(shapes)
    ])
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.evidence["downgrades"] == 5 and anomaly.evidence["monthly_loss"] == 5 * 11_000
