import itertools
import json
from datetime import timedelta

import pytest

from anomalies.detectors.refund_spike import charge_refund
from anomalies.models import DetectorConfig
from anomalies.scans import backtest
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, anomalies_of, detector_errors_of, event, process, reprocess_all, store
from tests.conftest import FIXTURES
from webhooks.payloads import validate_event

pytestmark = pytest.mark.django_db

DETECTOR = "refund_spike"
OPENAPI = FIXTURES / "stripe-openapi"
_ids = itertools.count(1)


def anomalies(tenant):
    return anomalies_of(tenant, DETECTOR)


def detector_errors(tenant):
    return detector_errors_of(tenant, DETECTOR)


def days(n):
    return timedelta(days=n)


def hours(n):
    return timedelta(hours=n)


def refund(at, refunded, before=0, customer="cus_A", currency="usd", charge_amount=None, refunds=None, **kw):
    """A charge.refunded event: `refunded` is the charge's cumulative amount_refunded after this refund.

    `before` (the previous cumulative) goes to previous_attributes; None leaves them out. The charge's
    `refunds` list is left out unless given (not sent by default since 2022-11-15).
    """
    previous = None if before is None else {"amount_refunded": before, "refunded": False}
    return event(
        "charge.refunded", at, customer=customer, currency=currency, amount=charge_amount or max(refunded, 100),
        amount_refunded=refunded, refunded=True, refunds=refunds, previous_attributes=previous, **kw,
    )


def refund_list(*refunds):
    return {"object": "list", "has_more": False, "total_count": len(refunds), "url": "/v1/charges/x/refunds",
            "data": [{"id": f"re_{n}", "object": "refund", "amount": amount, "created": int(at.timestamp()),
                      "currency": "usd", "status": "succeeded"} for n, (amount, at) in enumerate(refunds)]}


def credit_note(at, total, customer="cus_A", currency="usd", version="", livemode=True):
    """A credit_note.created around the stripe/openapi credit note (dahlia by default; acacia has `refund`)."""
    obj = json.loads((OPENAPI / version / "credit_note.json").read_text())
    n = next(_ids)
    obj.update(id=f"cn_t{n}", total=total, amount=total, customer=customer, currency=currency,
               created=int(at.timestamp()), livemode=livemode)
    payload = {"id": f"evt_cn{n}", "object": "event", "api_version": None, "created": int(at.timestamp()),
               "livemode": livemode, "type": "credit_note.created", "data": {"object": obj}}
    validate_event(payload)
    return payload


def set_thresholds(tenant, **values):
    with tenant_scope(tenant):
        DetectorConfig.objects.create(tenant=tenant, detector=DETECTOR, thresholds=values)


# --- reading the refund ------------------------------------------------------------------


def test_the_refund_is_the_increase_then_the_newest_listed_then_the_cumulative():
    assert charge_refund(refund(T0, 70000, before=60000)) == (10000, 70000)
    listed = refund_list((30000, T0), (60000, T0 - days(1)))  # newest first, as Stripe lists them
    assert charge_refund(refund(T0, 90000, before=None, refunds=listed)) == (30000, 90000)
    assert charge_refund(refund(T0, 90000, before=None)) == (90000, 90000)
    assert charge_refund(refund(T0, 500, before=500)) is None  # nothing new was refunded
    assert charge_refund(refund(T0, 0, before=None)) is None
    assert charge_refund({"data": {"object": {"amount_refunded": "lots"}}}) is None
    assert charge_refund("not an event") is None


# --- single refund or credit note -----------------------------------------------------------


def test_a_large_refund_fires(acme):
    big = refund(T0, 60000, before=0, charge_amount=80000)
    store(acme.tenant, big)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.severity == "high" and anomaly.status == "open"
    assert anomaly.fingerprint == "customer:cus_A:usd" and anomaly.customer_id == "cus_A"
    assert anomaly.title == "Refund of 600.00 USD to cus_A"
    assert anomaly.evidence["event_ids"] == [big["id"]]
    assert anomaly.evidence["amount"] == 60000 and anomaly.evidence["rules"] == ["single"]
    assert anomaly.first_seen_at == anomaly.last_seen_at == T0
    assert detector_errors(acme.tenant) == []


def test_exactly_the_threshold_fires_and_one_less_does_not(acme, globex):
    store(acme.tenant, refund(T0, 50000))
    store(globex.tenant, refund(T0, 49999))
    process()
    assert [a.title for a in anomalies(acme.tenant)] == ["Refund of 500.00 USD to cus_A"]
    assert anomalies(globex.tenant) == []


def test_a_small_partial_refund_of_a_largely_refunded_charge_is_not_large(acme):
    # The charge has 70,000 refunded in total, but this refund is 10,000 of it.
    store(acme.tenant, refund(T0, 70000, before=60000, id="ch_same"))
    process()
    assert anomalies(acme.tenant) == []


def test_partial_refunds_of_one_charge_are_one_occurrence_each(acme):
    first = refund(T0, 60000, before=0, id="ch_same", charge_amount=200000)
    second = refund(T0 + hours(1), 120000, before=60000, id="ch_same", charge_amount=200000)
    store(acme.tenant, first, second, dict(second, id="evt_redelivered"))
    process()
    [anomaly] = anomalies(acme.tenant)
    # Two large refunds, two occurrences; the second also makes 1,200.00 in 24 h (customer rule).
    assert anomaly.occurrences == 2
    assert anomaly.evidence["rules"] == ["single", "customer"]
    assert anomaly.title == "1,200.00 USD refunded to cus_A in 24 h (2 refunds)"


def test_new_shape_without_previous_attributes_or_refunds_list(acme):
    store(acme.tenant, refund(T0, 55000, before=None, invoice=None))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Refund of 550.00 USD to cus_A"


def test_old_shape_reads_the_newest_refund_of_the_list(acme):
    # No previous_attributes: the cumulative 90,000 is two refunds; the newest is 30,000.
    small = refund(T0, 90000, before=None, refunds=refund_list((30000, T0), (60000, T0 - days(3))))
    big = refund(T0, 90000, before=None, refunds=refund_list((60000, T0), (30000, T0 - days(3))), customer="cus_B")
    store(acme.tenant, small, big)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Refund of 600.00 USD to cus_B"


def test_a_large_credit_note_fires(acme):
    note = credit_note(T0, 75000, customer="cus_C")
    old = credit_note(T0 + hours(1), 50000, customer="cus_D", version="2025-02-24.acacia")
    store(acme.tenant, note, old, credit_note(T0, 49999, customer="cus_E"))
    process()
    assert sorted(a.title for a in anomalies(acme.tenant)) == [
        "Credit note of 500.00 USD to cus_D",
        "Credit note of 750.00 USD to cus_C",
    ]


def test_refund_without_customer_is_its_own_anomaly(acme):
    guest = refund(T0, 60000, customer=None)
    store(acme.tenant, guest)
    process()
    [anomaly] = anomalies(acme.tenant)
    charge_id = guest["data"]["object"]["id"]
    assert anomaly.title == f"Refund of 600.00 USD on {charge_id}" and anomaly.fingerprint == f"{charge_id}:usd"


def test_zero_decimal_currency_compares_in_its_own_units(acme):
    store(acme.tenant, refund(T0, 50000, currency="jpy"))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "Refund of 50,000 JPY to cus_A" and anomaly.fingerprint == "customer:cus_A:jpy"


def test_test_mode_refund_is_a_test_mode_anomaly(acme):
    store(acme.tenant, refund(T0, 60000, livemode=False))
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.livemode is False


# --- one customer in 24 h -------------------------------------------------------------------


def test_one_customer_refunded_a_lot_in_a_day(acme):
    refunds = [refund(T0 + hours(6 * i), 30000) for i in range(4)]  # 0 h .. 18 h
    store(acme.tenant, *refunds)
    process()
    [anomaly] = anomalies(acme.tenant)
    assert anomaly.title == "1,200.00 USD refunded to cus_A in 24 h (4 refunds)"
    assert anomaly.severity == "high" and anomaly.customer_id == "cus_A"
    assert anomaly.evidence["event_ids"] == [r["id"] for r in refunds]
    assert anomaly.evidence["customer_amount_24h"] == 120000 and anomaly.evidence["customer_refunds_24h"] == 4
    assert anomaly.evidence["rules"] == ["customer"]
    assert anomaly.occurrences == 1 and anomaly.last_seen_at == T0 + hours(18)


@pytest.mark.parametrize(
    "fourth",
    [
        lambda: refund(T0 + hours(24), 30000),  # 24 h after the first: the first is out of the window
        lambda: refund(T0 + hours(12), 30000, customer="cus_B"),  # another customer
        lambda: refund(T0 + hours(12), 30000, currency="eur"),  # another currency
        lambda: refund(T0 + hours(12), 30000, livemode=False),  # test mode
        lambda: refund(T0 + hours(12), 39999, before=30000),  # a refund of 9,999 only
        lambda: credit_note(T0 + hours(12), 30000),  # credit notes are not refunds here
    ],
)
def test_customer_near_misses_stay_quiet(acme, fourth):
    store(acme.tenant, *[refund(T0 + hours(i), 30000) for i in range(3)], fourth())
    process()
    assert anomalies(acme.tenant) == []


def test_refunds_arriving_newest_first_one_by_one(acme, globex):
    refunds = [refund(T0 + hours(6 * i), 30000) for i in range(4)]
    for payload in refunds:
        store(acme.tenant, payload)
        process()
    for payload in reversed(refunds):
        store(globex.tenant, payload)
        process()
    reprocess_all(acme.tenant)
    reprocess_all(globex.tenant)
    for tenant in (acme.tenant, globex.tenant):
        [anomaly] = anomalies(tenant)
        assert anomaly.occurrences == 1
        assert anomaly.last_seen_at == T0 + hours(18)
        assert anomaly.title == "1,200.00 USD refunded to cus_A in 24 h (4 refunds)"


# --- refund share (scan) ------------------------------------------------------------------------


def charges(n, amount, start, end, currency="usd", **kw):
    if not n:
        return []
    step = (end - start) / n
    return [event("charge.succeeded", start + step * i, amount=amount, currency=currency, **kw) for i in range(n)]


def guest_refunds(amounts, times, currency="usd", **kw):
    return [refund(at, amount, customer=None, currency=currency, **kw) for amount, at in zip(amounts, times)]


WINDOW_TIMES = (T0 - days(3), T0 - days(2), T0 - hours(1))


def share_scenario(window=(10000, 10000, 10000), usual=(10000, 10000), window_charges=20, baseline_charges=100,
                   window_currency="usd", **kw):
    """Revenue 10,000 a charge; the window is the 7 days to T0, the baseline the 28 days before."""
    return [
        *charges(baseline_charges, 10000, T0 - days(34), T0 - days(8), **kw),
        *guest_refunds(usual, [T0 - days(20) + hours(i) for i in range(len(usual))], **kw),
        *charges(window_charges, 10000, T0 - days(6), T0 - days(1), **kw),
        *guest_refunds(window, WINDOW_TIMES[-len(window):] if window else (), currency=window_currency, **kw),
    ]


def run_backtest(tenant, start=T0 - days(8), end=T0):
    with tenant_scope(tenant):
        outcome = backtest(tenant, start, end, only=DETECTOR)
    assert outcome.errors == []
    return [a for a in anomalies(tenant) if a.fingerprint.startswith("share:")]


def test_refund_share_twice_the_usual_fires_in_the_backtest(acme):
    store(acme.tenant, *share_scenario())
    process()
    assert anomalies(acme.tenant) == []  # no single or customer rule here
    [anomaly] = run_backtest(acme.tenant)
    assert anomaly.severity == "medium" and anomaly.fingerprint == "share:usd"
    assert anomaly.title == "Refunds at 15% of revenue over 7 days (300.00 USD of 2,000.00 USD)"
    assert anomaly.evidence["share"] == 0.15 and anomaly.evidence["baseline_share"] == 0.02
    assert anomaly.evidence["refunds"] == 3 and anomaly.evidence["baseline_revenue"] == 1000000
    assert "2.0% (200.00 USD of 10,000.00 USD)" in anomaly.summary
    assert anomaly.last_seen_at == T0 - hours(1)
    assert anomaly.occurrences == 1
    # Scanning again (live, later the same day) adds nothing: same refunds, same day.
    run_backtest(acme.tenant, start=T0, end=T0 + hours(3))
    [anomaly] = run_backtest(acme.tenant)
    assert anomaly.occurrences == 1


def test_exactly_the_share_threshold(acme, globex):
    store(acme.tenant, *share_scenario(window=(10000, 5000, 5000)))  # 20,000 of 200,000: 10%
    store(globex.tenant, *share_scenario(window=(10000, 5000, 4999)))
    process()
    assert len(run_backtest(acme.tenant)) == 1
    assert run_backtest(globex.tenant) == []


@pytest.mark.parametrize(
    "scenario",
    [
        dict(usual=(10000,) * 8),  # usually 8%: 15% is less than twice that
        dict(window=(15000, 15000)),  # two refunds only
        dict(window=(1000, 1000, 1000), window_charges=0),  # no revenue in the window
        dict(baseline_charges=0, usual=()),  # no history to compare with
        dict(window_currency="eur"),  # refunds in another currency than the revenue
        dict(window=()),  # nothing refunded this week
    ],
)
def test_share_near_misses_stay_quiet(acme, scenario):
    store(acme.tenant, *share_scenario(**scenario))
    process()
    assert run_backtest(acme.tenant) == []


def test_share_revenue_below_the_minimum(acme):
    set_thresholds(acme.tenant, min_revenue=200001)
    store(acme.tenant, *share_scenario())
    process()
    assert run_backtest(acme.tenant) == []


def test_share_in_test_mode_never_mixes_with_live(acme):
    store(acme.tenant, *share_scenario(window=(10000, 10000)),
          refund(T0 - hours(2), 10000, customer=None, livemode=False))
    process()
    assert run_backtest(acme.tenant) == []


def test_share_with_old_refunds_lacking_previous_attributes(acme):
    old_shape = [refund(at, 20000, before=None, customer=None, refunds=refund_list((10000, at), (10000, at)))
                 for at in WINDOW_TIMES]
    store(acme.tenant, *share_scenario(window=()), *old_shape)
    process()
    [anomaly] = run_backtest(acme.tenant)
    assert anomaly.evidence["refunded"] == 30000  # the newest listed refund of each, not the cumulative


# --- settings and isolation ---------------------------------------------------------------------


def test_threshold_overrides(acme):
    set_thresholds(acme.tenant, single_refund=100000, customer_refunds_24h=50000)
    store(acme.tenant, refund(T0, 60000, customer="cus_A"), refund(T0, 40000, customer="cus_C"),
          refund(T0 + hours(1), 10000, customer="cus_B"),
          refund(T0 + hours(2), 45000, customer="cus_B"))
    process()
    # 600.00 is no longer a large single refund, but over the customer's 500.00 a day on its own.
    assert sorted(a.title for a in anomalies(acme.tenant)) == [
        "550.00 USD refunded to cus_B in 24 h (2 refunds)",
        "600.00 USD refunded to cus_A in 24 h (1 refund)",
    ]


def test_other_tenants_refunds_are_never_read(acme, globex):
    store(acme.tenant, *[refund(T0 + hours(i), 30000) for i in range(2)])
    store(globex.tenant, *[refund(T0 + hours(i), 30000) for i in range(2, 4)])
    store(globex.tenant, *share_scenario(window=()))
    store(acme.tenant, *guest_refunds((10000, 10000, 10000), WINDOW_TIMES))
    process()
    assert anomalies(acme.tenant) == [] and anomalies(globex.tenant) == []
    assert run_backtest(acme.tenant) == [] and run_backtest(globex.tenant) == []


def test_a_steady_tenant_never_fires_over_a_whole_backtest(acme):
    # Two charges of 100.00 a day for 40 days and a refund of 20.00 every other day: about 5% of revenue.
    steady = charges(80, 10000, T0 - days(40), T0)
    steady += guest_refunds([2000] * 20, [T0 - days(40) + days(2) * i + hours(5) for i in range(20)])
    store(acme.tenant, *steady)
    process()
    assert run_backtest(acme.tenant, start=T0 - days(40), end=T0) == []
    assert anomalies(acme.tenant) == []


def test_odd_payloads_are_skipped_not_crashed(acme):
    odd = [
        event("charge.refunded", T0, customer="cus_A", amount_refunded=None, previous_attributes="odd"),
        event("charge.refunded", T0, customer="cus_A", amount_refunded=True, refunds="many"),
        event("charge.refunded", T0, customer="cus_A", amount_refunded=60000, refunds={"data": ["x", None]},
              currency=None),
        refund(T0, 70000, before="60000", refunds={"data": [{"amount": "lots", "created": None}]}),
        credit_note(T0, None),
        event("charge.refunded", T0, customer="cus_A", amount_refunded=90000, id=None,
              previous_attributes={"amount_refunded": 0}),
    ]
    store(acme.tenant, *odd)
    process()
    assert detector_errors(acme.tenant) == []
    with tenant_scope(acme.tenant):
        assert backtest(acme.tenant, T0 - days(1), T0 + days(1), only=DETECTOR).errors == []
    # Only the one with a readable cumulative of 70,000 (and no usable previous amount) is large.
    assert [a.title for a in anomalies(acme.tenant)] == ["Refund of 700.00 USD to cus_A"]
