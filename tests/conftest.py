import json
import time
from pathlib import Path

import pytest
import stripe

from tenants.onboarding import create_tenant
from tenants.scope import tenant_scope

# shared/ sits beside the repository (../shared from the project root).
FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "stripe-fixtures"
RUBY_MOCK_EVENTS = FIXTURES / "stripe-ruby-mock-events"
SECRET = "whsec_testsecret0123456789"


def load_fixture_event(name: str, **overrides) -> dict:
    """A real Stripe event from the fixtures, with a fresh id unless given."""
    event = json.loads((RUBY_MOCK_EVENTS / name).read_text())
    event["id"] = overrides.pop("id", f"evt_{time.time_ns()}")
    event.update(overrides)
    return event


def sign(body: str, secret: str = SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)


def post_event(client, endpoint, event, secret: str = SECRET, timestamp: int | None = None, path=None):
    body = event if isinstance(event, str) else json.dumps(event)
    return client.post(
        path or endpoint.path,
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body, secret, timestamp),
    )


@pytest.fixture
def make_tenant(db):
    counter = iter(range(1, 10_000))

    def make(name=None, secret=SECRET, **kwargs):
        n = next(counter)
        return create_tenant(name or f"Tenant {n}", webhook_secret=secret, **kwargs)

    return make


@pytest.fixture
def acme(make_tenant):
    return make_tenant("Acme")


@pytest.fixture
def globex(make_tenant):
    return make_tenant("Globex", secret="whsec_globexsecret987654321")


@pytest.fixture
def in_scope():
    """`with in_scope(tenant): ...` for assertions on tenant-owned tables."""
    return tenant_scope


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Tests never run collectstatic, so the manifest storage would have no manifest."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_endpoint_cache():
    """Each test starts with an empty per-process endpoint cache, as a new web worker would."""
    from webhooks import endpoint_cache

    endpoint_cache.clear()
    yield
    endpoint_cache.clear()
