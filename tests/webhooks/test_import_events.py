"""import_events: the three file formats, idempotence, and bad lines reported and skipped."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tenants.scope import tenant_scope
from tests.conftest import load_fixture_event
from webhooks.models import StripeEvent

pytestmark = pytest.mark.django_db


def run_import(tenant, *paths) -> dict:
    out = StringIO()
    call_command("import_events", "--tenant", tenant.slug, *map(str, paths), "--json", stdout=out)
    return json.loads(out.getvalue())


def events_of(tenant):
    with tenant_scope(tenant):
        return list(StripeEvent.objects.order_by("stripe_id"))


@pytest.fixture
def three_events():
    return [
        load_fixture_event("charge.succeeded.json", id="evt_i1"),
        load_fixture_event("invoice.payment_succeeded.json", id="evt_i2"),
        load_fixture_event("customer.subscription.updated.json", id="evt_i3"),
    ]


@pytest.mark.parametrize("form", ["array", "list_object", "lines"])
def test_each_format_is_stored_processed_and_idempotent(acme, tmp_path, three_events, form):
    path = tmp_path / "events.json"
    if form == "array":
        path.write_text(json.dumps(three_events))
    elif form == "list_object":
        path.write_text(json.dumps({"object": "list", "data": three_events, "has_more": False}))
    else:
        path.write_text("\n".join(json.dumps(e) for e in three_events) + "\n")
    assert run_import(acme.tenant, path) == {"stored": 3, "duplicates": 0, "rejected": [], "processed": 3}
    rows = events_of(acme.tenant)
    assert [r.stripe_id for r in rows] == ["evt_i1", "evt_i2", "evt_i3"]
    assert {r.source for r in rows} == {"import"}
    assert {r.status for r in rows} == {"processed"}
    assert {r.endpoint_id for r in rows} == {None}
    assert run_import(acme.tenant, path) == {"stored": 0, "duplicates": 3, "rejected": [], "processed": 0}
    assert len(events_of(acme.tenant)) == 3


def test_malformed_lines_are_reported_with_line_numbers_and_skipped(acme, tmp_path, three_events):
    path = tmp_path / "events.jsonl"
    lines = [
        json.dumps(three_events[0]),
        "{not json",
        "",
        json.dumps({"object": "event", "id": "evt_x"}),
        json.dumps(three_events[1]),
    ]
    path.write_text("\n".join(lines))
    result = run_import(acme.tenant, path)
    assert result["stored"] == 2
    assert result["rejected"] == [
        {"file": str(path), "line": 2, "reason": "invalid JSON: Expecting property name enclosed in double quotes"},
        {"file": str(path), "line": 4, "reason": "not a Stripe event: 'type' is missing or not a string"},
    ]
    assert [r.stripe_id for r in events_of(acme.tenant)] == ["evt_i1", "evt_i2"]


def test_bad_items_of_an_array_are_reported_by_index(acme, tmp_path, three_events):
    path = tmp_path / "events.json"
    path.write_text(json.dumps([three_events[0], 42, {"object": "charge"}]))
    result = run_import(acme.tenant, path)
    assert result["stored"] == 1
    assert result["rejected"] == [
        {"file": str(path), "index": 1, "reason": "not a Stripe event: expected a JSON object, got int"},
        {"file": str(path), "index": 2, "reason": "not a Stripe event: 'object' is not 'event'"},
    ]


def test_list_object_without_data_is_rejected(acme, tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"object": "list"}))
    result = run_import(acme.tenant, path)
    assert result["stored"] == 0
    assert result["rejected"] == [{"file": str(path), "reason": "list object without a 'data' array"}]


def test_unknown_tenant_and_missing_file_are_errors(acme, tmp_path):
    with pytest.raises(CommandError, match="no tenant with the slug 'nope'"):
        call_command("import_events", "--tenant", "nope", str(tmp_path / "x.json"))
    with pytest.raises(CommandError, match="no such file: "):
        call_command("import_events", "--tenant", acme.tenant.slug, str(tmp_path / "missing.json"))
    assert events_of(acme.tenant) == []


def test_import_goes_to_the_named_tenant_only(acme, globex, tmp_path, three_events):
    path = tmp_path / "events.json"
    path.write_text(json.dumps(three_events))
    run_import(globex.tenant, path)
    assert events_of(acme.tenant) == []
    assert len(events_of(globex.tenant)) == 3


def test_human_output_lists_rejections(acme, tmp_path, three_events):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(three_events[0]) + "\n{oops\n")
    out, err = StringIO(), StringIO()
    call_command("import_events", "--tenant", acme.tenant.slug, str(path), stdout=out, stderr=err)
    assert "stored 1, duplicates 0, rejected 1, processed 1" in out.getvalue()
    assert f"{path} line 2: invalid JSON" in err.getvalue()
