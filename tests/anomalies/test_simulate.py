"""The simulator behind `manage.py simulate` and the command itself.

The detection benchmark demands zero false positives on normal traffic, so the
normal stream is checked here against each detector's default rule, read from
the events alone (as a detector would); each injection is checked for its
label and the events that make it unmistakable.
"""

import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from anomalies.simulation import INJECTABLE, simulate, to_jsonl
from tenants.scope import tenant_scope
from webhooks.models import StripeEvent
from webhooks.payloads import (
    charge_card_fingerprint,
    invoice_subscription_id,
    read_event,
    subscription_monthly_amount,
    validate_event,
)

END = datetime(2025, 3, 31, 12, tzinfo=UTC)  # a Monday
SMALL = {"days": 14, "customers": 30}
# Sizes an injection needs: revenue_drop a usd day worth >= 10,000, silent_lapse a month plus grace.
SIZE_FOR = {"revenue_drop": {"days": 14, "customers": 60}, "silent_lapse": {"days": 40, "customers": 30}}


@cache
def stream(seed=1, days=14, customers=30, inject=(), livemode=True):
    return simulate(seed, days, END, customers, inject, livemode)


@pytest.fixture(scope="module")
def normal():
    """The default size: ~150 customers over 30 days, nothing injected."""
    events, labels = stream(seed=7, days=30, customers=150)
    assert labels == []
    return events


def obj(event):
    return event["data"]["object"]


def of_type(events, *types):
    return [e for e in events if e["type"] in types]


def when(event) -> datetime:
    return datetime.fromtimestamp(event["created"], UTC)


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the stream as a whole -------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_does_not():
    first = simulate(5, 14, END, 30, ["duplicate_charge", "fraud_spike"], True)
    again = simulate(5, 14, END, 30, ["fraud_spike", "duplicate_charge"], True)
    assert to_jsonl(first[0]) == to_jsonl(again[0])
    assert first[1] == again[1]
    other = simulate(6, 14, END, 30, ["duplicate_charge", "fraud_spike"], True)
    assert to_jsonl(other[0]) != to_jsonl(first[0])


def test_every_event_validates_and_reads_back_its_customer_amount_and_currency(normal):
    for event in normal:
        validate_event(event)
        facts = read_event(event)
        data = obj(event)
        assert facts.livemode is True and event["api_version"] == "2024-06-20"
        if data["object"] == "charge":
            assert (facts.customer_id, facts.amount, facts.currency) == (data["customer"], data["amount"],
                                                                         data["currency"])
            assert charge_card_fingerprint(data)
        elif data["object"] == "invoice":
            assert (facts.customer_id, facts.amount, facts.currency) == (data["customer"], data["total"],
                                                                         data["currency"])
            assert invoice_subscription_id(data) == data["subscription"]
        elif data["object"] == "subscription":
            item = data["items"]["data"][0]
            assert facts.customer_id == data["customer"]
            assert facts.amount == item["price"]["unit_amount"] * item["quantity"]
            assert facts.currency == item["price"]["currency"]


def test_ids_are_unique_and_events_sorted_strictly_inside_the_window(normal):
    ids = [e["id"] for e in normal]
    assert len(set(ids)) == len(ids) and ids[0] == "evt_sim_7_1"
    created = [e["created"] for e in normal]
    assert created == sorted(created)
    start = END - timedelta(days=30)
    assert start.timestamp() < created[0] and created[-1] < END.timestamp()
    charge_ids = [obj(e)["id"] for e in of_type(normal, "charge.succeeded", "charge.failed")]
    assert len(set(charge_ids)) == len(charge_ids)
    for event in normal:
        assert obj(event)["id"].split("_")[1] == "sim" or obj(event)["object"] == "radar.early_fraud_warning"


def test_volumes_at_the_default_size(normal):
    counts = Counter(e["type"] for e in normal)
    renewals = len([e for e in of_type(normal, "invoice.finalized")
                    if obj(e)["billing_reason"] == "subscription_cycle"])
    assert 100 <= renewals <= 170  # ~150 subscriptions, ~10% of them yearly
    assert counts["customer.subscription.updated"] >= renewals
    assert 1 <= counts["charge.failed"] <= 0.1 * renewals
    assert counts["charge.dispute.created"] <= 2 and counts["customer.subscription.deleted"] >= 1
    currencies = Counter(obj(e)["currency"] for e in of_type(normal, "charge.succeeded"))
    assert set(currencies) == {"usd", "eur"} and currencies["usd"] > currencies["eur"]


def test_weekend_one_off_volume_is_lower_than_on_weekdays(normal):
    per_day = Counter(when(e).date() for e in of_type(normal, "charge.succeeded") if obj(e)["invoice"] is None)
    days = {(END - timedelta(days=n)).date() for n in range(1, 30)}
    weekend = [per_day[d] for d in days if d.weekday() >= 5]
    weekday = [per_day[d] for d in days if d.weekday() < 5]
    assert statistics.mean(weekend) <= 0.6 * statistics.mean(weekday)


# --- normal traffic stays inside every detector's default thresholds ---------


def test_failures_are_sparse_and_always_recovered(normal):
    failed = of_type(normal, "charge.failed")
    by_hour = Counter(when(e).replace(minute=0, second=0) for e in failed)
    assert max(by_hour.values()) < 5  # charge_failure_spike needs 5 in an hour
    per_customer_day = Counter((obj(e)["customer"], when(e).date()) for e in failed)
    assert max(per_customer_day.values()) <= 2  # card_testing needs 5 in 10 minutes
    paid = {obj(e)["id"] for e in of_type(normal, "invoice.paid")}
    for event in of_type(normal, "invoice.payment_failed"):
        assert obj(event)["next_payment_attempt"] is not None  # never a final attempt (dunning_failure)
        retry = obj(event)["next_payment_attempt"] - event["created"]
        assert timedelta(hours=20) < timedelta(seconds=retry) < timedelta(hours=45)
        if obj(event)["next_payment_attempt"] < END.timestamp():
            assert obj(event)["id"] in paid
    statuses = {obj(e)["status"] for e in of_type(normal, "customer.subscription.updated")}
    assert "unpaid" not in statuses


def test_no_duplicate_charges_negative_invoices_or_currency_changes(normal):
    succeeded = sorted(of_type(normal, "charge.succeeded"), key=lambda e: e["created"])
    last = {}
    for event in succeeded:
        charge = obj(event)
        key = (charge["customer"], charge["amount"], charge["currency"])
        assert key not in last or event["created"] - last[key] > 300
        last[key] = event["created"]
    currencies = defaultdict(set)
    for event in succeeded:
        currencies[obj(event)["customer"]].add(obj(event)["currency"])
    assert all(len(found) == 1 for found in currencies.values())
    assert all(obj(e)["total"] >= 0 for e in of_type(normal, "invoice.finalized", "invoice.paid"))


def test_disputes_fraud_warnings_and_refunds_stay_small(normal):
    for kind in ("charge.dispute.created", "radar.early_fraud_warning.created"):
        times = sorted(e["created"] for e in of_type(normal, kind))
        assert all(sum(1 for t in times if s <= t < s + 30 * 86400) <= 2 for s in times)
    refunds = of_type(normal, "charge.refunded")
    assert 5 <= len(refunds) <= 12  # about one every 3 days
    assert all(obj(e)["amount_refunded"] <= 1000 for e in refunds)  # refund_spike: 50,000; 100,000 a day
    for event in refunds:  # refund_spike's share rule needs 3 refunds in a currency within 7 days
        week = [e for e in refunds if obj(e)["currency"] == obj(event)["currency"]
                and 0 <= event["created"] - e["created"] < 7 * 86400]
        assert len(week) <= 2


def test_downgrades_are_small_and_at_most_one_a_week(normal):
    downgrades = []
    for event in of_type(normal, "customer.subscription.updated"):
        previous = event["data"].get("previous_attributes", {})
        if "items" in previous:
            before = subscription_monthly_amount({**obj(event), **previous})
            after = subscription_monthly_amount(obj(event))
            if after < before:
                downgrades.append((event["created"], before - after))
    assert downgrades and all(loss < 50_000 for _, loss in downgrades)
    times = [t for t, _ in downgrades]
    assert all(b - a > 7 * 86400 for a, b in zip(times, times[1:], strict=False))


def test_cycle_invoices_come_once_a_month_per_subscription(normal):
    cycles = defaultdict(list)
    for event in of_type(normal, "invoice.finalized"):
        if obj(event)["billing_reason"] == "subscription_cycle":
            cycles[obj(event)["subscription"]].append(event["created"])
    for times in cycles.values():
        assert all(27 * 86400 <= b - a <= 32 * 86400 for a, b in zip(times, times[1:], strict=False))


def test_every_period_that_starts_is_paid_within_the_grace(normal):
    paid_at = defaultdict(list)
    for event in of_type(normal, "invoice.paid"):
        paid_at[obj(event)["subscription"]].append(event["created"])
    for event in of_type(normal, "customer.subscription.updated"):
        previous = event["data"].get("previous_attributes", {})
        if "current_period_start" in previous and event["created"] < END.timestamp() - 3 * 86400:
            start = obj(event)["current_period_start"]
            assert any(start <= t <= start + 2 * 86400 for t in paid_at[obj(event)["id"]])


def test_each_currency_day_brings_what_was_due(normal):
    """revenue_drop's bar: at most 15% below the renewals due plus the usual other revenue."""
    due, actual, other = defaultdict(int), defaultdict(int), defaultdict(int)
    for event in of_type(normal, "invoice.finalized"):
        if obj(event)["billing_reason"] == "subscription_cycle":
            due[(obj(event)["currency"], when(event).date())] += obj(event)["amount_due"]
    for event in of_type(normal, "charge.succeeded"):
        key = (obj(event)["currency"], when(event).date())
        actual[key] += obj(event)["amount"]
        if obj(event)["invoice"] is None:
            other[key] += obj(event)["amount"]
    days = [(END - timedelta(days=n)).date() for n in range(22, 0, -1)]  # complete days with 7 days of history
    for currency in ("usd", "eur"):
        usual = {  # the mean of weekdays, or of weekends: above the median of the same weekday
            weekend: statistics.mean(other[(currency, d)] for d in days if (d.weekday() >= 5) == weekend)
            for weekend in (False, True)
        }
        for day in days:
            expected = due[(currency, day)] + usual[day.weekday() >= 5]
            if expected >= 10_000:
                assert actual[(currency, day)] >= 0.85 * expected, (currency, day)


def test_money_arriving_off_its_day_never_lands_twice_on_a_weekday(normal):
    """A retry pays an invoice due on an earlier day: "other" revenue for its day, which raises what
    that weekday is expected to bring for the next weeks. revenue_drop takes the median of the same
    weekday over 4 weeks, so one such day is absorbed; two within 5 weeks would not be."""
    finalized_on = {obj(e)["id"]: when(e).date() for e in of_type(normal, "invoice.finalized")}
    due, late = defaultdict(int), defaultdict(int)
    for event in of_type(normal, "invoice.finalized"):
        if obj(event)["billing_reason"] == "subscription_cycle":
            due[(obj(event)["currency"], when(event).date())] += obj(event)["amount_due"]
    for event in of_type(normal, "charge.succeeded"):
        invoice = obj(event)["invoice"]
        if invoice is not None and finalized_on.get(invoice) != when(event).date():
            late[(obj(event)["currency"], when(event).date())] += obj(event)["amount"]
    days = [(END - timedelta(days=n)).date() for n in range(30, 0, -1)]
    for currency in ("usd", "eur"):
        typical = statistics.median(due[(currency, d)] for d in days) + statistics.mean(
            sum(obj(e)["amount"] for e in of_type(normal, "charge.succeeded")
                if obj(e)["currency"] == currency and obj(e)["invoice"] is None and when(e).date() == d)
            for d in days if d.weekday() < 5)
        gains = [d for d in days if late[(currency, d)] > 0.07 * typical]  # the simulator keeps to 5%
        for a in gains:
            assert not [b for b in gains if b > a and (b - a).days % 7 == 0 and (b - a).days < 35], (currency, a)


# --- injections -------------------------------------------------------------


def injected(name):
    size = SIZE_FOR.get(name, SMALL)
    events, labels = stream(seed=3, inject=(name,), **size)
    (label,) = labels
    assert label["detector"] == name and label["livemode"] is True
    start = END - timedelta(days=size["days"])
    at = parse(label["at"])
    assert at >= start + timedelta(days=8) and at >= start + (END - start) / 2 and at < END
    assert list(label)[:4] == ["detector", "at", "livemode", "customer_id"]
    assert parse(label["window"]["start"]) <= at <= parse(label["window"]["end"])
    by_id = {e["id"]: e for e in events}
    assert label["event_ids"] and all(event_id in by_id for event_id in label["event_ids"])
    return events, label, [by_id[i] for i in label["event_ids"]]


def test_charge_failure_spike():
    _, label, mine = injected("charge_failure_spike")
    failed = of_type(mine, "charge.failed")
    assert len(failed) == 25 and len({obj(e)["customer"] for e in failed}) == 25
    assert len({when(e).replace(minute=0, second=0) for e in failed}) == 1
    assert label["customer_id"] is None and label["at"] == datetime.fromtimestamp(
        failed[4]["created"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    times = [e["created"] for e in failed]
    assert max(sum(1 for t in times if s <= t < s + 600) for s in times) < 20  # not card testing


def test_card_testing():
    _, label, mine = injected("card_testing")
    failed = of_type(mine, "charge.failed")
    assert len(failed) == 8 and {obj(e)["amount"] for e in failed} == {100}
    assert {obj(e)["customer"] for e in failed} == {label["customer_id"]}
    assert len({charge_card_fingerprint(obj(e)) for e in failed}) == 8
    assert failed[-1]["created"] - failed[0]["created"] < 300
    assert of_type(mine, "customer.created") and label["may_also_fire"] == ["charge_failure_spike"]


def test_duplicate_charge():
    events, label, _ = injected("duplicate_charge")
    charges = [e for e in of_type(events, "charge.succeeded") if obj(e)["customer"] == label["customer_id"]]
    first, second = next((a, b) for a, b in zip(charges, charges[1:], strict=False)
                         if b["created"] - a["created"] == 40)
    assert obj(first)["id"] != obj(second)["id"] == label["charge_id"]
    assert (obj(first)["amount"], obj(first)["currency"]) == (obj(second)["amount"], obj(second)["currency"])


def test_fraud_spike():
    events, label, mine = injected("fraud_spike")
    disputes = of_type(mine, "charge.dispute.created")
    assert len(disputes) == 6 and disputes[-1]["created"] - disputes[0]["created"] <= 12 * 3600
    charged = {obj(e)["id"]: e["created"] for e in of_type(events, "charge.succeeded")}
    assert len({obj(e)["charge"] for e in disputes}) == 6
    assert all(charged[obj(e)["charge"]] < e["created"] for e in disputes)


def test_negative_invoice():
    _, label, mine = injected("negative_invoice")
    (finalized,) = of_type(mine, "invoice.finalized")
    assert obj(finalized)["id"] == label["invoice_id"] and obj(finalized)["total"] == -1500
    assert read_event(finalized).amount == -1500


def test_refund_spike():
    events, label, mine = injected("refund_spike")
    (refund,) = of_type(mine, "charge.refunded")
    assert obj(refund)["amount_refunded"] == 75_000 and obj(refund)["amount"] == 99_000
    original = [e for e in of_type(events, "charge.succeeded") if obj(e)["id"] == label["charge_id"]]
    assert original and original[0]["created"] < refund["created"]


def test_revenue_drop():
    events, label, _ = injected("revenue_drop")
    day = parse(label["at"]).date()
    assert label["at"].endswith("T23:59:59Z") and day.weekday() < 5 and label["currency"] == "usd"
    on_day = [e for e in events if when(e).date() == day]
    usd_charges = [e for e in of_type(on_day, "charge.succeeded") if obj(e)["currency"] == "usd"]
    assert not [e for e in usd_charges if obj(e)["invoice"] is None]
    due = [e for e in of_type(on_day, "invoice.finalized")
           if obj(e)["currency"] == "usd" and obj(e)["billing_reason"] == "subscription_cycle"]
    charged = {obj(e)["invoice"] for e in usd_charges}
    assert len([e for e in due if obj(e)["id"] not in charged]) >= 0.6 * len(due)
    amount_due = sum(obj(e)["amount_due"] for e in due)
    other = defaultdict(int)
    for event in of_type(events, "charge.succeeded"):
        if obj(event)["currency"] == "usd" and obj(event)["invoice"] is None and when(event).date() < day:
            other[when(event).date()] += obj(event)["amount"]
    expected = amount_due + statistics.median(v for d, v in other.items() if d.weekday() < 5)
    assert expected >= 10_000  # revenue_drop's min_expected
    assert sum(obj(e)["amount"] for e in usd_charges) <= 0.5 * expected


def test_silent_lapse():
    events, label, mine = injected("silent_lapse")
    (advance,) = mine
    assert advance["type"] == "customer.subscription.updated" and obj(advance)["status"] == "active"
    assert obj(advance)["current_period_start"] == advance["created"] == parse(label["window"]["start"]).timestamp()
    later = [e for e in events if e["created"] > advance["created"] and obj(e).get("customer") == label["customer_id"]]
    assert later == []
    # Due one interval after the period start, plus the 3-day grace, and still inside the window.
    period_end = datetime.fromtimestamp(obj(advance)["current_period_end"], UTC)
    assert parse(label["at"]) == period_end + timedelta(days=3) <= END - timedelta(hours=12)
    assert obj(advance)["items"]["data"][0]["price"]["recurring"]["interval"] == "month"


def test_dunning_failure():
    _, label, mine = injected("dunning_failure")
    failures = [e for e in of_type(mine, "invoice.payment_failed") if obj(e)["id"] == label["invoice_id"]]
    assert [obj(e)["attempt_count"] for e in failures] == [1, 2, 3, 4]
    assert [obj(e)["next_payment_attempt"] is None for e in failures] == [False, False, False, True]
    last_update = of_type(mine, "customer.subscription.updated")[-1]
    assert obj(last_update)["status"] == "unpaid" and last_update["created"] > failures[-1]["created"]


def test_currency_mismatch():
    events, label, _ = injected("currency_mismatch")
    charges = [e for e in of_type(events, "charge.succeeded") if obj(e)["customer"] == label["customer_id"]]
    gbp = [e for e in charges if obj(e)["currency"] == "gbp"]
    assert len(gbp) == 1 and obj(gbp[0])["id"] == label["charge_id"]
    before = [e for e in charges if e["created"] < gbp[0]["created"]]
    assert len(before) >= 3 and {obj(e)["currency"] for e in before} == {"usd"}


def test_plan_downgrade():
    _, label, mine = injected("plan_downgrade")
    (update,) = mine
    previous = update["data"]["previous_attributes"]
    assert obj(update)["quantity"] == 2 and previous["quantity"] == 20
    assert previous["items"]["data"][0]["price"]["unit_amount"] == 4900
    loss = subscription_monthly_amount({**obj(update), **previous}) - subscription_monthly_amount(obj(update))
    assert loss == 88_200 and obj(update)["id"] == label["subscription_id"]


def test_double_invoice():
    events, label, _ = injected("double_invoice")
    cycle = [e for e in of_type(events, "invoice.finalized")
             if obj(e)["subscription"] == label["subscription_id"] and obj(e)["billing_reason"] == "subscription_cycle"]
    twin = next(e for e in cycle if obj(e)["id"] == label["invoice_id"])
    regular = [e for e in cycle if 0 < twin["created"] - e["created"] <= 26 * 3600]
    assert [twin["created"] - e["created"] for e in regular] == [3 * 3600]
    assert of_type(events, "invoice.paid") and any(
        obj(e)["id"] == label["invoice_id"] for e in of_type(events, "invoice.paid"))


def test_all_injections_at_once_land_on_separate_days():
    events, labels = stream(seed=11, days=40, customers=150, inject=INJECTABLE)
    assert sorted(label["detector"] for label in labels) == sorted(INJECTABLE)
    days = Counter(label["at"][:10] for label in labels if label["detector"] not in ("silent_lapse",))
    assert len(days) >= 9
    for event in events:
        validate_event(event)


def test_test_mode_events_and_labels():
    events, labels = stream(inject=("negative_invoice",), livemode=False)
    assert {e["livemode"] for e in events} == {False} and labels[0]["livemode"] is False
    assert all(obj(e).get("livemode", False) is False for e in events)


# --- the command ------------------------------------------------------------


def run(*args) -> str:
    out = StringIO()
    call_command("simulate", *args, "--end", "2025-03-31T12:00:00Z", stdout=out)
    return out.getvalue()


def test_out_writes_json_lines_and_the_labels_sidecar(tmp_path):
    path = tmp_path / "stream.jsonl"
    printed = json.loads(run("--days", "14", "--customers", "30", "--seed", "4", "--inject", "negative_invoice",
                             "--out", str(path), "--json"))
    lines = path.read_text().splitlines()
    assert len(lines) == printed["events"] and json.loads(lines[0])["id"] == "evt_sim_4_1"
    sidecar = json.loads((tmp_path / "stream.jsonl.labels.json").read_text())
    assert sidecar["labels"] == printed["labels"] and sidecar["labels"][0]["detector"] == "negative_invoice"
    assert (sidecar["start"], sidecar["end"], sidecar["livemode"]) == ("2025-03-17T12:00:00Z",
                                                                      "2025-03-31T12:00:00Z", True)


@pytest.mark.django_db
def test_without_out_it_imports_into_the_tenant(acme):
    printed = json.loads(run("--tenant", acme.tenant.slug, "--days", "14", "--customers", "30", "--json"))
    assert printed["stored"] == printed["events"] > 0 and printed["rejected"] == []
    with tenant_scope(acme.tenant):
        assert StripeEvent.objects.count() == printed["events"]
        assert set(StripeEvent.objects.values_list("source", flat=True)) == {"import"}


def test_unknown_injection_lists_the_valid_names(tmp_path):
    with pytest.raises(CommandError) as error:
        run("--inject", "nonsense", "--out", str(tmp_path / "x.jsonl"))
    assert "nonsense" in str(error.value) and all(name in str(error.value) for name in INJECTABLE)


@pytest.mark.parametrize("name", ["webhook_lag", "webhook_silence"])
def test_webhook_only_detectors_cannot_be_injected(tmp_path, name):
    with pytest.raises(CommandError, match="live webhook delivery"):
        run("--inject", name, "--out", str(tmp_path / "x.jsonl"))


def test_importing_needs_a_tenant():
    with pytest.raises(CommandError, match="--tenant"):
        run("--days", "14")


def test_a_window_too_short_for_an_injection_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="silent_lapse needs a longer window"):
        run("--days", "14", "--customers", "30", "--inject", "silent_lapse", "--out", str(tmp_path / "x.jsonl"))
