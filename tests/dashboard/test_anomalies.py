"""Anomaly triage: list (filters, order, pages, bulk), detail, status actions through change_status."""

from datetime import timedelta

import pytest
from django.utils import timezone

from anomalies.models import Anomaly, AnomalyStatusChange
from tenants.scope import tenant_scope
from tests.anomalies.events import T0, event, store
from tests.dashboard.conftest import make_anomaly, url

pytestmark = pytest.mark.django_db


def titles(response) -> list[str]:
    import re

    return re.findall(r'class="strong">([^<]+)</a>', response.content.decode())


def test_list_is_sorted_by_severity_then_recency(acme, owner):
    make_anomaly(acme.tenant, severity="low", title="old low", last_seen_at=T0)
    make_anomaly(acme.tenant, severity="critical", title="old critical", last_seen_at=T0)
    make_anomaly(acme.tenant, severity="critical", title="new critical", last_seen_at=T0 + timedelta(hours=1))
    make_anomaly(acme.tenant, severity="medium", title="new medium", last_seen_at=T0 + timedelta(hours=2))
    assert titles(owner.get(url(acme.tenant, "anomalies/"))) == ["new critical", "old critical", "new medium",
                                                                  "old low"]


def test_filters(acme, owner):
    make_anomaly(acme.tenant, title="A", detector="card_testing", customer_id="cus_a", severity="high")
    make_anomaly(acme.tenant, title="B", detector="duplicate_charge", customer_id="cus_b", severity="low")
    make_anomaly(acme.tenant, title="C", status="resolved")
    get = lambda q: titles(owner.get(url(acme.tenant, f"anomalies/?{q}")))  # noqa: E731
    assert sorted(get("")) == ["A", "B"]  # default: what needs attention
    assert sorted(get("status=any")) == ["A", "B", "C"]
    assert get("status=resolved") == ["C"]
    assert get("detector=card_testing") == ["A"]
    assert get("customer_id=cus_b") == ["B"]
    assert get("severity=low") == ["B"]
    assert sorted(get("status=any&first_seen_after=2026-03-02")) == ["A", "B", "C"]
    assert get("status=any&first_seen_after=2030-01-01") == []


def test_invalid_filter_is_explained_not_a_crash(acme, owner):
    make_anomaly(acme.tenant)
    response = owner.get(url(acme.tenant, "anomalies/?severity=purple"))
    assert response.status_code == 200
    assert "purple is not one of the available choices" in response.content.decode()


def test_pagination(acme, owner):
    for n in range(30):
        make_anomaly(acme.tenant, title=f"a{n}")
    first = owner.get(url(acme.tenant, "anomalies/"))
    assert len(titles(first)) == 25 and "Page 1 of 2" in first.content.decode()
    assert len(titles(owner.get(url(acme.tenant, "anomalies/?page=2")))) == 5


@pytest.mark.parametrize("rows", [1, 20])
def test_list_query_count_does_not_grow(acme, owner, rows, django_assert_num_queries):
    for _ in range(rows):
        make_anomaly(acme.tenant)
    # session, user, membership, count, page, switcher, quota usage
    with django_assert_num_queries(7):
        assert owner.get(url(acme.tenant, "anomalies/")).status_code == 200


def test_bulk_acknowledge_and_resolve(acme, owner):
    a, b, c = (make_anomaly(acme.tenant) for _ in range(3))
    response = owner.post(url(acme.tenant, "anomalies/bulk/"),
                          {"action": "acknowledge", "ids": [str(a.public_id), str(b.public_id)], "query": "status=any"})
    assert response.status_code == 302 and response.url.endswith("anomalies/?status=any")
    owner.post(url(acme.tenant, "anomalies/bulk/"), {"action": "resolve", "ids": [str(b.public_id)]})
    with tenant_scope(acme.tenant):
        status = dict(Anomaly.objects.values_list("public_id", "status"))
        assert AnomalyStatusChange.objects.count() == 3
    assert (status[a.public_id], status[b.public_id], status[c.public_id]) == ("acknowledged", "resolved", "open")


def test_bulk_with_an_unknown_action_changes_nothing(acme, owner):
    a = make_anomaly(acme.tenant)
    response = owner.post(url(acme.tenant, "anomalies/bulk/"), {"action": "delete", "ids": [str(a.public_id)]},
                          follow=True)
    assert "Choose acknowledge or resolve." in response.content.decode()
    with tenant_scope(acme.tenant):
        assert Anomaly.objects.get().status == "open" and not AnomalyStatusChange.objects.exists()


def test_detail_shows_evidence_links_and_history(acme, owner):
    payload = event("charge.succeeded", T0)
    store(acme.tenant, payload)
    anomaly = make_anomaly(acme.tenant, evidence={"event_ids": [payload["id"]], "amount": 2500, "currency": "usd"},
                           customer_id="cus_9")
    test_anomaly = make_anomaly(acme.tenant, livemode=False, customer_id="cus_t")
    page = owner.get(url(acme.tenant, f"anomalies/{anomaly.public_id}/")).content.decode()
    assert payload["id"] in page and "25.00 USD" in page
    assert "https://dashboard.stripe.com/customers/cus_9" in page
    assert f"https://dashboard.stripe.com/events/{payload['id']}" in page
    assert 'data-chart="evidence"' in page
    page = owner.get(url(acme.tenant, f"anomalies/{test_anomaly.public_id}/")).content.decode()
    assert "https://dashboard.stripe.com/test/customers/cus_t" in page


def test_money_metrics_are_shown_in_the_currency_and_counts_as_numbers(acme, owner):
    anomaly = make_anomaly(acme.tenant, evidence={"event_ids": [], "amount_due": 2900, "monthly_loss": 120000,
                                                  "currency": "usd", "unpaid_count": 3})
    page = owner.get(url(acme.tenant, f"anomalies/{anomaly.public_id}/")).content.decode()
    assert "<dd>29.00 USD</dd>" in page and "<dd>1,200.00 USD</dd>" in page
    assert "<dd>3</dd>" in page  # a count stays a count


def test_htmx_actions_return_the_panel(acme, owner):
    anomaly = make_anomaly(acme.tenant)
    base = url(acme.tenant, f"anomalies/{anomaly.public_id}/")
    response = owner.post(base + "acknowledge/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'id="anomaly-panel"' in response.content.decode()
    assert "<html" not in response.content.decode()
    assert "Open → Acknowledged" in response.content.decode()
    owner.post(base + "resolve/", HTTP_HX_REQUEST="true")
    owner.post(base + "reopen/", HTTP_HX_REQUEST="true")
    until = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    owner.post(base + "snooze/", {"until": until}, HTTP_HX_REQUEST="true")
    response = owner.post(base + "false_positive/", {"reason": "our own test card"}, HTTP_HX_REQUEST="true")
    assert "our own test card" in response.content.decode()
    with tenant_scope(acme.tenant):
        changes = list(AnomalyStatusChange.objects.order_by("id").values_list("to_status", "actor_label"))
    assert [c[0] for c in changes] == ["acknowledged", "resolved", "open", "snoozed", "false_positive"]
    assert {c[1] for c in changes} == {owner.user.username}


@pytest.mark.parametrize("action, data, message", [
    ("false_positive", {"reason": " "}, "marking a false positive needs a reason"),
    ("snooze", {"until": ""}, "snooze needs an &#x27;until&#x27; time"),
    ("snooze", {"until": "2001-01-01T10:00"}, "&#x27;until&#x27; must be in the future"),
    ("snooze", {"until": "tomorrow"}, "&#x27;until&#x27; is not a date and time"),
    ("reopen", {}, "cannot reopen an anomaly that is open"),
])
def test_bad_action_input_shows_the_error_and_changes_nothing(acme, owner, action, data, message):
    anomaly = make_anomaly(acme.tenant)
    for headers in ({"HTTP_HX_REQUEST": "true"}, {}):
        response = owner.post(url(acme.tenant, f"anomalies/{anomaly.public_id}/{action}/"), data, **headers)
        assert response.status_code == 400
        assert message in response.content.decode()
    with tenant_scope(acme.tenant):
        assert Anomaly.objects.get().status == "open" and not AnomalyStatusChange.objects.exists()


def test_unknown_action_is_404(acme, owner):
    anomaly = make_anomaly(acme.tenant)
    assert owner.post(url(acme.tenant, f"anomalies/{anomaly.public_id}/explode/")).status_code == 404


def test_csv_export_follows_the_filter(acme, owner):
    make_anomaly(acme.tenant, title="=cmd()", detector="card_testing")
    make_anomaly(acme.tenant, title="other", detector="duplicate_charge")
    response = owner.get(url(acme.tenant, "anomalies/export.csv?detector=card_testing"))
    body = b"".join(response.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("public_id,detector,severity,status,title")
    assert len(lines) == 2 and "'=cmd()" in lines[1]  # formula-looking text is quoted
    assert response["Content-Disposition"].startswith(f'attachment; filename="{acme.tenant.slug}-anomalies-')
