"""Outsiders in the dashboard: a logged-in member of another tenant gets 404 for every /t/<acme>/ URL, and nothing changes.

Also: Acme's ids under the outsider's own tenant slug are 404 (ids never cross tenants).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import AlertChannel
from tenants.models import Membership
from tenants.scope import tenant_scope
from tests.dashboard.conftest import member_client
from tests.isolation.test_api_isolation import snapshot, victim  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def targets(acme, victim, owner_of_acme):
    """The API suite's victim ids, plus an alert channel and a member of Acme."""
    with tenant_scope(acme.tenant):
        channel = AlertChannel.objects.create(tenant=acme.tenant, name="ops", kind="email",
                                              config={"to": ["ops@example.com"]})
    return {**victim, "channel": channel.public_id, "member": owner_of_acme.user.username}


@pytest.fixture
def owner_of_acme(acme):
    return member_client(acme.tenant, "owner")


def requests_for(v):
    until = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    a, e, c = f"anomalies/{v['anomaly']}", f"webhooks/{v['endpoint']}", f"alerts/{v['channel']}"
    return [
        ("get", "", None), ("get", "anomalies/", None), ("get", f"{a}/", None), ("get", "events/", None),
        ("get", f"events/{v['event']}/", None), ("get", "webhooks/", None), ("get", "detectors/", None),
        ("get", "members/", None), ("get", "alerts/", None), ("get", f"{c}/", None), ("get", f"{c}/deliveries/", None),
        ("get", "anomalies/export.csv", None), ("get", "events/export.csv", None),
        ("post", f"{a}/acknowledge/", {}), ("post", f"{a}/resolve/", {}), ("post", f"{a}/snooze/", {"until": until}),
        ("post", f"{a}/false_positive/", {"reason": "not ours"}), ("post", f"{a}/reopen/", {}),
        ("post", "anomalies/bulk/", {"action": "resolve", "ids": [str(v["anomaly"])]}),
        ("post", f"events/{v['event']}/reprocess/", {}),
        ("post", f"{e}/secrets/", {"secret": "whsec_intruder0123456789", "expire_current": "0"}),
        ("post", f"{e}/secrets/{v['secret']}/expire/", {}), ("post", f"{e}/test/", {}),
        ("post", "detectors/revenue_drop/", {"drop": "0.5"}), ("post", "detectors/revenue_drop/preview/", {}),
        ("post", "members/invite/", {"email": "intruder@example.com", "role": "owner"}),
        ("post", "members/role/", {"member": v["member"], "role": "viewer"}),
        ("post", "members/remove/", {"member": v["member"]}),
        ("post", "keys/", {"name": "stolen"}), ("post", f"keys/{v['key']}/revoke/", {}),
        ("post", "alerts/new/?kind=email", {"name": "x", "setting": "x@example.com", "min_severity": "low",
                                            "mode": "live", "digest": "none"}),
        ("post", f"{c}/", {"name": "renamed", "setting": "x@example.com", "min_severity": "low", "mode": "live"}),
        ("post", f"{c}/test/", {}), ("post", f"{c}/delete/", {}),
    ]


def full_snapshot(tenant):
    with tenant_scope(tenant):
        return {
            **snapshot(tenant),
            "members": list(Membership.objects.values_list("user__username", "role").order_by("id")),
            "channels": list(AlertChannel.objects.values_list("name", "config").order_by("id")),
        }


def test_every_dashboard_url_of_another_tenant_is_404_and_nothing_changes(acme, globex, targets):
    outsider = member_client(globex.tenant, "owner")
    before = full_snapshot(acme.tenant)
    for method, path, data in requests_for(targets):
        response = getattr(outsider, method)(f"/t/{acme.tenant.slug}/{path}", data or {})
        assert response.status_code == 404, (method, path, response.status_code)
    assert full_snapshot(acme.tenant) == before


def test_acme_ids_under_the_outsiders_own_slug_are_404(acme, globex, targets):
    outsider = member_client(globex.tenant, "owner")
    before = full_snapshot(acme.tenant)
    for method, path, data in requests_for(targets):
        if any(str(targets[k]) in path for k in ("anomaly", "event", "endpoint", "channel", "key")):
            response = getattr(outsider, method)(f"/t/{globex.tenant.slug}/{path}", data or {})
            assert response.status_code == 404, (method, path, response.status_code)
    assert full_snapshot(acme.tenant) == before


def test_the_same_urls_work_for_acme(acme, targets, owner_of_acme):
    for method, path, _ in requests_for(targets):
        if method == "get":
            assert owner_of_acme.get(f"/t/{acme.tenant.slug}/{path}").status_code == 200, path
