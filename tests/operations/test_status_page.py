"""The operators' system status page in the admin (issue 7)."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tests.anomalies.events import T0, event, minutes, process, store
from tests.conftest import load_fixture_event, post_event
from webhooks.models import StripeEvent, WorkerHeartbeat

pytestmark = pytest.mark.django_db

URL = "/admin/status/"


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-op-123456")
    client.force_login(user)
    return user


def test_the_status_page_shows_backlog_failures_stale_workers_and_rejections(client, operator, acme, globex):
    now = timezone.now()
    store(acme.tenant, event("charge.succeeded", T0, customer="cus_1", amount=100),
          received_at=now - timedelta(minutes=10))
    process()
    # A backlog of three, the oldest waiting about 20 minutes, and one event that failed for good.
    store(globex.tenant, *[event("charge.failed", T0 + minutes(i), customer="cus_2", amount=100) for i in range(3)],
          received_at=now - timedelta(minutes=20))
    StripeEvent.all_tenants.filter(tenant=acme.tenant).update(status="failed", available_at=None)
    WorkerHeartbeat.objects.create(identity="host-a:1", host="host-a", pid=1, started_at=now - timedelta(hours=1),
                                   last_beat_at=now - timedelta(seconds=5), events_processed=1234)
    WorkerHeartbeat.objects.create(identity="host-b:2", host="host-b", pid=2, started_at=now - timedelta(hours=2),
                                   last_beat_at=now - timedelta(minutes=10), events_processed=99)
    body = load_fixture_event("charge.succeeded.json")
    bad = post_event(client, acme.endpoint, body, secret="whsec_wrong_secret_000000000000")
    assert bad.status_code == 400

    page = client.get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<td id="queued">3</td>' in html
    assert '<td id="failed">1</td>' in html
    oldest = page.context["status"].oldest_queued_age_seconds
    assert 20 * 60 <= oldest < 21 * 60
    assert "host-a:1" in html and "host-b:2" in html
    assert html.count("stale: no heartbeat for over a minute") == 1
    assert page.context["status"].ingest_last_hour == [(globex.tenant.slug, 3), (acme.tenant.slug, 1)]
    assert page.context["status"].rejections_last_day == [(acme.tenant.slug, "signature_mismatch", 1)]
    assert page.context["status"].table_sizes


def test_with_no_worker_the_page_says_to_start_one(client, operator):
    html = client.get(URL).content.decode()
    assert "No worker has reported." in html and "manage.py worker" in html


def test_the_admin_index_links_to_the_status_page(client, operator):
    assert 'href="/admin/status/"' in client.get("/admin/").content.decode()


def test_non_staff_users_do_not_get_the_status_page(client, acme):
    user = get_user_model().objects.create_user("member", "m@example.com", "pw-member-123456")
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.logout()
    assert client.get(URL).status_code == 302
