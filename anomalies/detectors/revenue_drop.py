"""revenue_drop: a day's revenue fell well below what was expected, and unusually so for this account.

Evaluated by the periodic scan for the last complete local day before as_of
(the tenant's time zone), per currency. Revenue is the sum of successful
charges (charge.succeeded; refunds are not subtracted). The expected amount
has two parts:

- Renewals known to fall due that day: subscription renewal invoices
  (billing_reason subscription_cycle) that Stripe finalized that day and will
  charge automatically (collection_method send_invoice is left out: the
  customer pays those whenever), for their amount_due. We read the invoices,
  not subscription state, because the invoice is what Stripe actually tries
  to charge: coupons, taxes, customer credit, prorations, paused collection
  (drafts are never finalized) and cancellations are already applied, and
  they are found by an indexed query on the window's days, while the
  subscription route would need each subscription's latest event however old
  (a yearly plan's last event is a year back). An invoice is dated by its invoice.finalized
  event, which Stripe sends right before it charges; an invoice known only
  from invoice.created is dated an hour after it (Stripe waits about an hour
  before finalizing a renewal). A renewal is paid when an invoice.paid or
  invoice.payment_succeeded for it is stored by the end of that day.
- The usual other (non-renewal) revenue for that weekday: the lower median of
  the same weekday over up to the previous 4 weeks (charges minus the paid
  renewals of each day). While fewer than 2 such weekdays are known, the
  lower of the previous 7 days' lower median and last week's same weekday,
  so a quiet weekend in week two is not held to weekday levels. Lower
  medians, so one anchor-date spike in a short history never raises the bar.

It fires when the day is at least `drop` below the expected amount AND the
shortfall is unusual for this account: the day's residual (actual −
expected) has a robust z-score of at most `z_score` against the residuals of
the previous 28 days (computed the same way): (residual − median) / (1.4826 ×
MAD). The scale has a floor of 5 % of the day's expected amount: a perfectly
regular history has a MAD of 0, and a z-score against 0 would call any
wobble extraordinary; with the floor, a history that regular still needs a
15 % shortfall to reach z = −3, the defaults' own bar. The lumpiness of a
small account (renewals cluster on anchor dates, quiet weekends) is part of
the expected amount or of its own history, so it alone never fires; nor does a
day of an account with less than `min_history_days` of charges in that
currency (counted from its first charge within the 35 days looked at) or with
less than `min_expected` expected.

If a later scan finds the same day no longer short (late-delivered charges
arrived), the anomaly is resolved.

Queries per scan: one aggregate sums the window's charges per currency and
15-minute bucket of `created` in the database (every time zone's offset is a
whole number of quarter hours, so each bucket falls in one local day; the
buckets are epoch arithmetic, native in SQLite and PostgreSQL, where
TruncDate with a time zone costs a Python call per row on SQLite); one reads
the window's renewal invoices (billing_reason, collection_method and
amount_due, fields that are the same in every API version, extracted by the
database instead of loading whole payloads); one reads which invoices were
paid.
"""

import statistics
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Sum
from django.db.models.fields.json import KT

from anomalies.detectors.base import Detector, DetectorContext, Finding, Recovery, Threshold
from anomalies.models import Severity
from anomalies.registry import register
from anomalies.sql import epoch_bucket
from anomalies.text import money

CHARGE = "charge.succeeded"
FINALIZED, CREATED = "invoice.finalized", "invoice.created"
PAID_TYPES = ("invoice.paid", "invoice.payment_succeeded")
RENEWAL_REASON = "subscription_cycle"
# Stripe finalizes (and charges) a renewal invoice about an hour after creating it.
FINALIZE_DELAY = timedelta(hours=1)
WINDOW_DAYS = 35  # days of history read before the evaluated day
RESIDUAL_DAYS = 28  # days whose residuals give the account's day-to-day variation
WEEKS = 4  # same weekdays looked back at for the usual other revenue
MAD_TO_SIGMA = 1.4826
SCALE_FLOOR_DIVISOR = 20  # the scale is at least 1/20 (5 %) of the expected amount
MAX_LISTED = 20
BUCKET_SECONDS = 900  # quarter hours: every UTC offset is a multiple


@dataclass(frozen=True, slots=True)
class Renewal:
    invoice_id: str
    subscription_id: str
    stripe_id: str
    amount: int
    paid: bool


@register
class RevenueDrop(Detector):
    name = "revenue_drop"
    title = "Revenue drop"
    description = (
        "A day's successful charges fall well below the renewals due that day plus the usual other revenue "
        "for that weekday, by more than this account's normal day-to-day variation. Checked once the day is "
        "over, per currency."
    )
    has_scan = True
    thresholds = (
        Threshold("drop", 0.15, 0.05, 0.95, "How far below the expected amount a day must fall (0.15 = 15 %)"),
        Threshold(
            "z_score", -3.0, -10.0, -1.0,
            "How unusual the shortfall must be against the previous 28 days (robust z-score, at most this)",
        ),
        Threshold(
            "min_history_days", 7, 1, 28,
            "Days since the first charge in the currency before a day is judged", int,
        ),
        Threshold(
            "min_expected", 10_000, 0, 10**12,
            "Smallest expected daily amount (minor units) worth judging", int,
        ),
        Threshold("critical_drop", 0.5, 0.05, 1.0, "A drop at least this large is critical (0.5 = 50 %)"),
    )

    def scan(self, ctx: DetectorContext, as_of: datetime):
        zone = _zone(ctx.tenant)
        day = as_of.astimezone(zone).date() - timedelta(days=1)  # the last complete local day
        window_first = day - timedelta(days=WINDOW_DAYS)
        start, end = _midnight(window_first, zone), _midnight(day + timedelta(days=1), zone)
        charges = _daily_charges(ctx, start, end, zone)
        renewals = _renewals(ctx, start, end, zone)
        for currency in sorted(set(charges) | {c for c, d in renewals if d == day}):
            yield from self._judge(ctx, zone, currency, day, charges.get(currency, {}), renewals)

    def _judge(self, ctx, zone, currency, day, charges: dict[date, int], renewals):
        t = ctx.thresholds
        if not charges:
            return
        first_day = min(charges)
        history_days = (day - first_day).days
        if history_days < t["min_history_days"]:
            return
        model = _Model(first_day, charges, {d: r for (c, d), r in renewals.items() if c == currency})
        expected = model.expected(day)
        if expected is None:
            return
        due, usual, method = expected
        expected_total = due + usual
        if expected_total <= 0 or expected_total < t["min_expected"]:
            return
        actual = charges.get(day, 0)
        residuals = []
        for offset in range(RESIDUAL_DAYS, 0, -1):
            past = day - timedelta(days=offset)
            past_expected = model.expected(past) if past > first_day else None
            if past_expected is not None:
                residuals.append(charges.get(past, 0) - past_expected[0] - past_expected[1])
        median = statistics.median(residuals) if residuals else 0.0
        mad = statistics.median(abs(r - median) for r in residuals) if residuals else 0.0
        scale = max(MAD_TO_SIGMA * mad, expected_total / SCALE_FLOOR_DIVISOR, 1.0)
        z = (actual - expected_total - median) / scale
        drop = (expected_total - actual) / expected_total
        fingerprint = f"{currency}:{day.isoformat()}"
        occurred_at = _midnight(day + timedelta(days=1), zone)
        if not (drop >= t["drop"] and z <= t["z_score"]):
            # Not (or no longer, e.g. late charges arrived) a drop: resolve the day's anomaly if open.
            yield Recovery(fingerprint, occurred_at, f"revenue of {day.isoformat()} is no longer below expectations")
            return

        due_list = renewals.get((currency, day), [])
        unpaid = sorted((r for r in due_list if not r.paid), key=lambda r: (-r.amount, r.subscription_id, r.invoice_id))
        paid_amount = sum(r.amount for r in due_list if r.paid)
        severity = Severity.CRITICAL if drop >= t["critical_drop"] else Severity.HIGH
        pct = int(drop * 100 + 1e-9)  # floored: never rounded up past what was measured
        listed = [r.subscription_id or r.invoice_id for r in unpaid[:MAX_LISTED]]
        more = f" (+{len(unpaid) - len(listed)} more)" if len(unpaid) > len(listed) else ""
        unpaid_text = (
            f" Renewals that fell due and were not paid that day: {', '.join(listed)}{more}, "
            f"{money(sum(r.amount for r in unpaid), currency)} in all."
            if unpaid else " Every renewal that fell due was paid; the shortfall is in other revenue."
        )
        yield Finding(
            fingerprint=fingerprint,
            severity=severity,
            title=(
                f"{currency.upper()} revenue on {day.isoformat()} {pct}% below expected: "
                f"{money(actual, currency)} vs {money(expected_total, currency)}"
            ),
            summary=(
                f"Successful charges in {currency.upper()} on {day:%A %d %B %Y} ({zone.key}) came to "
                f"{money(actual, currency)}, {pct}% below the expected {money(expected_total, currency)}: "
                f"{money(due, currency)} of renewals falling due that day ({len(due_list)} subscription "
                f"invoice{'s' if len(due_list) != 1 else ''}, {money(paid_amount, currency)} of them paid) plus "
                f"{money(usual, currency)} of usual other revenue ({method}). The shortfall is unusual for this "
                f"account (robust z-score {z:.1f} against its day-to-day variation over the previous "
                f"{len(residuals)} days).{unpaid_text} Check that day's failed payments and whether checkout and "
                "the Stripe integration are taking payments."
            ),
            occurred_at=occurred_at,
            occurrence_key=fingerprint,
            event_ids=tuple(r.stripe_id for r in unpaid[:MAX_LISTED]),
            metrics={
                "currency": currency,
                "day": day.isoformat(),
                "timezone": zone.key,
                "actual": actual,
                "expected": expected_total,
                "renewals_due": due,
                "renewals_due_count": len(due_list),
                "renewals_paid": paid_amount,
                "usual_other": usual,
                "usual_other_method": method,
                "drop": round(drop, 4),
                "z_score": round(z, 2),
                "residual_median": round(median, 2),
                "residual_scale": round(scale, 2),
                "residual_days": len(residuals),
                "history_days": history_days,
                "unpaid_count": len(unpaid),
                "unpaid_subscription_ids": [r.subscription_id for r in unpaid[:MAX_LISTED]],
                "unpaid_invoice_ids": [r.invoice_id for r in unpaid[:MAX_LISTED]],
            },
        )


class _Model:
    """Expected revenue of a day from the days before it (within the window and the currency's history)."""

    def __init__(self, first_day: date, charges: dict[date, int], renewals: dict[date, list[Renewal]]):
        self.first_day, self.charges, self.renewals = first_day, charges, renewals

    def other(self, day: date) -> int:
        """Non-renewal revenue of a day: its charges minus the renewals paid that day."""
        paid = sum(r.amount for r in self.renewals.get(day, ()) if r.paid)
        return max(0, self.charges.get(day, 0) - paid)

    def expected(self, day: date) -> tuple[int, int, str] | None:
        """(renewals due, usual other revenue, how the latter was computed), or None without history."""
        known = lambda d: d >= self.first_day  # noqa: E731
        same = [self.other(day - timedelta(weeks=k)) for k in range(1, WEEKS + 1) if known(day - timedelta(weeks=k))]
        if len(same) >= 2:
            usual = statistics.median_low(same)
            method = f"median of the same weekday over the previous {len(same)} weeks"
        else:
            previous = [self.other(day - timedelta(days=k)) for k in range(1, 8) if known(day - timedelta(days=k))]
            if not previous:
                return None
            usual = statistics.median_low(previous)
            method = f"median of the previous {len(previous)} days"
            if same and same[0] < usual:
                usual, method = same[0], "the same weekday last week, lower than the median of the previous days"
        due = sum(r.amount for r in self.renewals.get(day, ()))
        return due, int(usual), method


def _zone(tenant) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(tenant.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _midnight(day: date, zone) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def _daily_charges(ctx, start: datetime, end: datetime, zone) -> dict[str, dict[date, int]]:
    """{currency: {local day: sum of successful charges}}: one aggregate query, grouped in the database."""
    rows = (
        ctx.events()
        .filter(type=CHARGE, created__gte=start, created__lt=end, amount__isnull=False)
        .exclude(currency="")
        .annotate(bucket=epoch_bucket("created", BUCKET_SECONDS))
        .values("currency", "bucket")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    daily: dict[str, dict[date, int]] = {}
    for row in rows:
        day = datetime.fromtimestamp(row["bucket"] * BUCKET_SECONDS, tz=zone).date()
        days = daily.setdefault(row["currency"], {})
        days[day] = days.get(day, 0) + int(row["total"] or 0)
    return daily


def _as_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _renewals(ctx, start: datetime, end: datetime, zone) -> dict[tuple[str, date], list[Renewal]]:
    """Renewal invoices due in [start, end), by (currency, local day), each marked paid or not by its day's end."""
    rows = (
        ctx.events()
        .filter(type__in=(FINALIZED, CREATED), created__gte=start - FINALIZE_DELAY, created__lt=end)
        .exclude(object_id="")
        .annotate(
            # Stable fields in every API version; the database extracts them so no payload is loaded.
            reason=KT("payload__data__object__billing_reason"),
            method=KT("payload__data__object__collection_method"),
            amount_due=KT("payload__data__object__amount_due"),
        )
        .values_list("type", "created", "object_id", "stripe_id", "amount", "currency", "subscription_id",
                     "reason", "method", "amount_due")
    )
    chosen: dict[str, tuple] = {}
    for row in rows:
        kind, created, invoice_id = row[0], row[1], row[2]
        due_at = created if kind == FINALIZED else created + FINALIZE_DELAY
        current = chosen.get(invoice_id)
        # Prefer the finalized event (Stripe charges right after it), then the earliest.
        rank = (kind != FINALIZED, due_at, row[3])
        if current is None or rank < current[0]:
            chosen[invoice_id] = (rank, due_at, row)
    paid_at: dict[str, datetime] = {}
    for invoice_id, created in (
        ctx.events()
        .filter(type__in=PAID_TYPES, created__gte=start - FINALIZE_DELAY, created__lt=end)
        .exclude(object_id="")
        .values_list("object_id", "created")
    ):
        if invoice_id not in paid_at or created < paid_at[invoice_id]:
            paid_at[invoice_id] = created
    renewals: dict[tuple[str, date], list[Renewal]] = {}
    for invoice_id, (_, due_at, row) in sorted(chosen.items()):
        _kind, _created, _id, stripe_id, total, currency, subscription_id, reason, method, amount_due = row
        amount = _as_int(amount_due)
        amount = amount if amount is not None else total
        if reason != RENEWAL_REASON or method == "send_invoice" or not currency or not amount or amount <= 0:
            continue
        if not start <= due_at < end:
            continue
        day = due_at.astimezone(zone).date()
        day_end = _midnight(day + timedelta(days=1), zone)
        paid = invoice_id in paid_at and paid_at[invoice_id] < day_end
        renewals.setdefault((currency, day), []).append(Renewal(invoice_id, subscription_id, stripe_id, amount, paid))
    return renewals


def daily_revenue(ctx, first_day: date, last_day: date, zone) -> dict[str, list[tuple[date, int, int | None]]]:
    """Per currency, each local day of [first_day, last_day] with its successful charges and the amount this
    detector expected that day (renewals due plus usual other revenue; None without enough history).

    The metrics API and the dashboard chart the same baseline the detector judges against.
    """
    start = _midnight(first_day - timedelta(days=WINDOW_DAYS), zone)
    end = _midnight(last_day + timedelta(days=1), zone)
    charges = _daily_charges(ctx, start, end, zone)
    renewals = _renewals(ctx, start, end, zone)
    currencies = set(charges) | {c for c, d in renewals if first_day <= d <= last_day}
    series: dict[str, list[tuple[date, int, int | None]]] = {}
    for currency in sorted(currencies):
        days = charges.get(currency, {})
        model = (
            _Model(min(days), days, {d: r for (c, d), r in renewals.items() if c == currency}) if days else None
        )
        rows = []
        day = first_day
        while day <= last_day:
            expected = model.expected(day) if model is not None and day > model.first_day else None
            rows.append((day, days.get(day, 0), expected[0] + expected[1] if expected else None))
            day += timedelta(days=1)
        series[currency] = rows
    return series
