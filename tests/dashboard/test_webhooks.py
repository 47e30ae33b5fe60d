"""Webhook setup: URL, write-only secrets with rotation, counts by reason, the signed test event."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.scope import tenant_scope
from tests.conftest import SECRET, load_fixture_event, post_event
from tests.dashboard.conftest import url
from webhooks.models import SigningSecret, StripeEvent

pytestmark = pytest.mark.django_db


def secrets_of(tenant):
    with tenant_scope(tenant):
        return list(SigningSecret.objects.order_by("id").values_list("secret", "expires_at"))


def test_page_shows_url_and_never_the_secret(acme, owner):
    page = owner.get(url(acme.tenant, "webhooks/")).content.decode()
    assert f"http://testserver{acme.endpoint.path}" in page
    assert SECRET not in page and "charge.failed" in page


def test_counts_accepted_and_rejected_by_reason(acme, owner, client):
    post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"))
    post_event(client, acme.endpoint, load_fixture_event("charge.succeeded.json"), secret="whsec_wrong0123456789")
    page = owner.get(url(acme.tenant, "webhooks/")).content.decode()
    assert 'data-testid="accepted-24h">1<' in page
    assert "signature mismatch" in page


def test_rotation_adds_a_secret_and_expires_the_old_one_later(acme, owner):
    before = timezone.now()
    response = owner.post(url(acme.tenant, f"webhooks/{acme.endpoint.token}/secrets/"),
                          {"secret": "whsec_newsecret0123456789", "expire_current": "24"})
    assert response.status_code == 302
    (old, old_expiry), (new, new_expiry) = secrets_of(acme.tenant)
    assert (old, new, new_expiry) == (SECRET, "whsec_newsecret0123456789", None)
    assert before + timedelta(hours=23) < old_expiry < before + timedelta(hours=25)


@pytest.mark.parametrize("secret, message", [
    ("sk_live_oops", "a Stripe signing secret looks like whsec_ followed by letters and digits"),
    (SECRET, "this secret is already active on the endpoint"),
])
def test_bad_secret_shows_the_error_and_stores_nothing(acme, owner, secret, message):
    before = secrets_of(acme.tenant)
    response = owner.post(url(acme.tenant, f"webhooks/{acme.endpoint.token}/secrets/"),
                          {"secret": secret, "expire_current": "0"})
    assert response.status_code == 400 and message in response.content.decode()
    assert secrets_of(acme.tenant) == before


def test_expire_now(acme, owner):
    with tenant_scope(acme.tenant):
        fingerprint = SigningSecret.objects.get().fingerprint
    owner.post(url(acme.tenant, f"webhooks/{acme.endpoint.token}/secrets/{fingerprint}/expire/"))
    [(_, expires_at)] = secrets_of(acme.tenant)
    assert expires_at <= timezone.now()
    assert owner.post(url(acme.tenant, f"webhooks/{acme.endpoint.token}/secrets/0000000000/expire/")).status_code == 404


def test_test_event_goes_through_ingest_and_shows_in_test_mode(acme, owner):
    response = owner.post(url(acme.tenant, f"webhooks/{acme.endpoint.token}/test/"))
    assert response.status_code == 302 and response.url.endswith("/events/?mode=test")
    with tenant_scope(acme.tenant):
        stored = StripeEvent.objects.get()
    assert (stored.source, stored.livemode, stored.endpoint_id, stored.status) == ("webhook", False, acme.endpoint.pk,
                                                                                    "pending")
    page = owner.get(response.url).content.decode()
    assert stored.stripe_id in page and "was signed, received and queued" in page


def test_test_event_without_a_secret_says_what_to_do(make_tenant, owner):
    bare = make_tenant("Bare", secret=None)
    from tests.dashboard.conftest import member_client

    client = member_client(bare.tenant, "owner")
    response = client.post(url(bare.tenant, f"webhooks/{bare.endpoint.token}/test/"), follow=True)
    assert "add the endpoint&#x27;s Stripe signing secret (whsec_…) first" in response.content.decode()
    with tenant_scope(bare.tenant):
        assert not StripeEvent.objects.exists()


def test_viewer_cannot_add_secrets_or_send_tests(acme, viewer):
    before = secrets_of(acme.tenant)
    assert viewer.post(url(acme.tenant, f"webhooks/{acme.endpoint.token}/secrets/"),
                       {"secret": "whsec_newsecret0123456789"}).status_code == 403
    assert viewer.post(url(acme.tenant, f"webhooks/{acme.endpoint.token}/test/")).status_code == 403
    assert secrets_of(acme.tenant) == before
    with tenant_scope(acme.tenant):
        assert not StripeEvent.objects.exists()
