import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tenants.models import ApiKey, Membership, Tenant
from tenants.scope import tenant_scope
from webhooks.models import SigningSecret, WebhookEndpoint

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("create_tenant", *args, stdout=out)
    return out.getvalue()


def counts():
    return (
        Tenant.objects.count(),
        WebhookEndpoint.all_tenants.count(),
        SigningSecret.all_tenants.count(),
        ApiKey.all_tenants.count(),
        Membership.all_tenants.count(),
        get_user_model().objects.count(),
    )


def test_json_output_has_exactly_the_documented_keys():
    result = json.loads(run("Acme Inc", "--webhook-secret", "whsec_abc123def456", "--owner", "o@acme.test", "--json"))
    assert set(result) == {"tenant", "webhook_path", "api_key", "webhook_secret_set"}
    assert result["tenant"] == "acme-inc"
    assert result["webhook_secret_set"] is True
    tenant = Tenant.objects.get(slug="acme-inc")
    with tenant_scope(tenant):
        endpoint = WebhookEndpoint.objects.get()
        assert result["webhook_path"] == f"/webhooks/stripe/{endpoint.token}/"
        assert len(endpoint.token) >= 22  # at least 128 random bits, URL-safe
        assert SigningSecret.objects.get().secret == "whsec_abc123def456"
        key = ApiKey.objects.get()
        membership = Membership.objects.get()
    assert result["api_key"].startswith(f"bw_{key.prefix}_")
    assert key.matches(result["api_key"].split("_", 2)[2])
    assert result["api_key"] not in key.secret_hash  # only the hash is stored
    assert membership.role == "owner" and membership.user.email == "o@acme.test"


def test_without_secret_reports_it_and_slug_option_wins():
    result = json.loads(run("Globex", "--slug", "globex-corp", "--json"))
    assert result["tenant"] == "globex-corp"
    assert result["webhook_secret_set"] is False


def test_human_output_shows_key_once_and_path():
    out = run("Initech")
    assert "Webhook path: /webhooks/stripe/" in out
    assert "API key (shown only now): bw_" in out


def test_duplicate_slug_is_refused_and_creates_nothing():
    run("Acme", "--json")
    before = counts()
    with pytest.raises(CommandError, match="a tenant with the slug 'acme' already exists"):
        run("Acme", "--owner", "new@acme.test")
    assert counts() == before


@pytest.mark.parametrize("secret", ["sk_live_123", "whsec_", "whsec_short", "whsec_has space123", ""])
def test_invalid_secret_is_refused_and_creates_nothing(secret):
    before = counts()
    with pytest.raises(CommandError, match="invalid webhook secret: a Stripe signing secret looks like whsec_"):
        run("Acme", "--webhook-secret", secret)
    assert counts() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Acme", "--slug", "Not A Slug"], "invalid slug 'Not A Slug'"),
        (["   "], "the tenant name must not be empty"),
        (["Acme", "--owner", "not-an-email"], "invalid owner e-mail address 'not-an-email'"),
    ],
)
def test_other_bad_input_is_refused(args, message):
    before = counts()
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert counts() == before
