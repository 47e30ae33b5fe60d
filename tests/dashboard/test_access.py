"""The door of every dashboard page: login, membership (404), roles (viewers read only), mode, switcher."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from anomalies.models import Anomaly
from tenants.scope import tenant_scope
from tests.dashboard.conftest import make_anomaly, member_client, url

pytestmark = pytest.mark.django_db

PAGES = ["", "anomalies/", "events/", "webhooks/", "detectors/", "members/", "alerts/", "anomalies/export.csv",
         "events/export.csv", "alerts/new/?kind=email"]


def test_anonymous_is_sent_to_login(acme):
    response = Client().get(url(acme.tenant, "anomalies/"))
    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next=/t/{acme.tenant.slug}/anomalies/"


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_each_role(acme, owner, admin, viewer, path):
    for client in (owner, admin, viewer):
        assert client.get(url(acme.tenant, path)).status_code == 200, path


@pytest.mark.parametrize("path", PAGES)
def test_non_member_gets_404(acme, outsider, path):
    assert outsider.get(url(acme.tenant, path)).status_code == 404


def test_unknown_tenant_and_disabled_tenant_are_404(acme, owner):
    assert owner.get("/t/no-such-tenant/").status_code == 404
    acme.tenant.is_active = False
    acme.tenant.save()
    assert owner.get(url(acme.tenant)).status_code == 404


def test_viewer_post_is_refused_and_nothing_changes(acme, viewer):
    anomaly = make_anomaly(acme.tenant)
    response = viewer.post(url(acme.tenant, f"anomalies/{anomaly.public_id}/resolve/"))
    assert response.status_code == 403
    assert b"read-only" in response.content
    with tenant_scope(acme.tenant):
        assert Anomaly.objects.get().status == "open"


def test_viewer_sees_no_write_controls(acme, viewer):
    anomaly = make_anomaly(acme.tenant)
    page = viewer.get(url(acme.tenant, f"anomalies/{anomaly.public_id}/")).content.decode()
    assert "Read-only" in page and ">Resolve<" not in page
    assert "Send invitation" not in viewer.get(url(acme.tenant, "members/")).content.decode()


def test_mode_toggle_is_remembered_per_tenant_and_honoured(acme, owner):
    make_anomaly(acme.tenant, livemode=True, title="Live one")
    make_anomaly(acme.tenant, livemode=False, title="Test one")
    page = owner.get(url(acme.tenant, "anomalies/")).content.decode()
    assert "Live one" in page and "Test one" not in page
    page = owner.get(url(acme.tenant, "anomalies/?mode=test")).content.decode()
    assert "Test one" in page and "Live one" not in page and "test mode" in page
    page = owner.get(url(acme.tenant, "anomalies/")).content.decode()  # remembered in the session
    assert "Test one" in page and "Live one" not in page


def test_switcher_lists_every_tenant_of_the_user(acme, globex, owner):
    from tenants.models import Membership

    with tenant_scope(globex.tenant):
        Membership.objects.create(tenant=globex.tenant, user=owner.user, role="viewer")
    page = owner.get(url(acme.tenant, "anomalies/")).content.decode()
    assert f'href="/t/{globex.tenant.slug}/"' in page and f'href="/t/{acme.tenant.slug}/"' in page
    assert owner.get(url(globex.tenant)).status_code == 200


def test_home_sends_a_member_to_their_tenant(acme, owner):
    response = owner.get("/")
    assert response.status_code == 302 and response.url == f"/t/{acme.tenant.slug}/"


def test_home_without_tenants_explains(db):
    client = Client()
    client.force_login(get_user_model().objects.create_user("lonely@example.com"))
    page = client.get("/").content.decode()
    assert "not a member of any workspace" in page
