"""Dashboard test helpers: logged-in clients of each role, and rows to look at."""

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tenants.models import Membership
from tenants.scope import tenant_scope
from tests.api.conftest import make_anomaly  # noqa: F401  (re-exported for the dashboard tests)

_n = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The overview keeps its chart series in the cache: each test starts without them."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def member_client(tenant, role: str, username: str | None = None) -> Client:
    name = username or f"{role}{next(_n)}@example.com"
    user = get_user_model().objects.create_user(name, email=name)  # force_login below: no password hashing
    with tenant_scope(tenant):
        Membership.objects.create(tenant=tenant, user=user, role=role)
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def owner(acme):
    return member_client(acme.tenant, "owner")


@pytest.fixture
def admin(acme):
    return member_client(acme.tenant, "admin")


@pytest.fixture
def viewer(acme):
    return member_client(acme.tenant, "viewer")


@pytest.fixture
def outsider(globex):
    """A member of Globex only: every Acme URL must answer 404."""
    return member_client(globex.tenant, "owner")


def url(tenant, path: str = "") -> str:
    return f"/t/{tenant.slug}/{path}"
