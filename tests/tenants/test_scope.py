"""The tenant scope is the safety net under every query: prove it holds."""

import pytest
from django.apps import apps

from tenants.managers import TenantScopedManager
from tenants.models import ApiKey, Membership, Tenant
from tenants.scope import TenantScopeError, current_tenant, current_tenant_or_none, tenant_scope
from webhooks.models import StripeEvent, WebhookEndpoint

pytestmark = pytest.mark.django_db


def tenant_owned_models():
    return [m for m in apps.get_models() if any(f.name == "tenant" for f in m._meta.fields)]


def test_every_tenant_owned_model_is_scoped_by_default(acme):
    models = tenant_owned_models()
    assert {m.__name__ for m in models} >= {"Membership", "ApiKey", "WebhookEndpoint", "StripeEvent"}
    for model in models:
        assert isinstance(model._default_manager, TenantScopedManager), model
        assert model._default_manager is model.objects, model
        assert not isinstance(model.all_tenants, TenantScopedManager), model
        with pytest.raises(TenantScopeError):
            model.objects.exists()
        with pytest.raises(TenantScopeError):
            model.objects.count()


@pytest.mark.parametrize(
    "query",
    [
        lambda: list(StripeEvent.objects.all()),
        lambda: StripeEvent.objects.filter(type="x").first(),
        lambda: StripeEvent.objects.get(pk=1),
        lambda: StripeEvent.objects.count(),
        lambda: StripeEvent.objects.exists(),
        lambda: StripeEvent.objects.aggregate(n=__import__("django.db.models").db.models.Count("id")),
        lambda: list(StripeEvent.objects.iterator()),
        lambda: list(StripeEvent.objects.raw("SELECT * FROM webhooks_stripeevent")),
        lambda: StripeEvent.objects.update(status="processed"),
        lambda: StripeEvent.objects.all().delete(),
        lambda: StripeEvent.objects.in_bulk([1]),
        lambda: StripeEvent.objects.values_list("id"),
        lambda: StripeEvent.objects.bulk_create([]),
        lambda: WebhookEndpoint.objects.create(),
        lambda: ApiKey.objects.get_or_create(name="x"),
    ],
)
def test_every_query_method_raises_without_scope(acme, query):
    with pytest.raises(TenantScopeError):
        query()


def test_queries_in_scope_see_only_that_tenant(acme, globex):
    with tenant_scope(acme.tenant):
        assert list(WebhookEndpoint.objects.all()) == [acme.endpoint]
        assert WebhookEndpoint.objects.filter(pk=globex.endpoint.pk).exists() is False
        with pytest.raises(WebhookEndpoint.DoesNotExist):
            WebhookEndpoint.objects.get(pk=globex.endpoint.pk)
        assert WebhookEndpoint.objects.filter(pk=globex.endpoint.pk).update(label="hijacked") == 0
    with tenant_scope(globex.tenant):
        assert WebhookEndpoint.objects.get().label == "Stripe"


def test_saving_another_tenants_row_inside_a_scope_raises(acme, globex):
    with tenant_scope(acme.tenant):
        foreign = WebhookEndpoint.all_tenants.get(pk=globex.endpoint.pk)
        foreign.label = "hijacked"
        with pytest.raises(TenantScopeError, match="Refusing to write a WebhookEndpoint of tenant"):
            foreign.save()
        with pytest.raises(TenantScopeError):
            foreign.delete()
        with pytest.raises(TenantScopeError):
            WebhookEndpoint.objects.create(tenant=globex.tenant)
        with pytest.raises(TenantScopeError):
            WebhookEndpoint.objects.bulk_create([WebhookEndpoint(tenant=globex.tenant)])
        with pytest.raises(TenantScopeError, match="move rows"):
            WebhookEndpoint.objects.update(tenant=globex.tenant)
    assert WebhookEndpoint.all_tenants.get(pk=globex.endpoint.pk).label == "Stripe"
    assert WebhookEndpoint.all_tenants.filter(tenant=globex.tenant).count() == 1


def test_saving_without_scope_raises(acme):
    endpoint = WebhookEndpoint.all_tenants.get(pk=acme.endpoint.pk)
    with pytest.raises(TenantScopeError):
        endpoint.save()


def test_create_in_scope_fills_the_tenant(acme):
    with tenant_scope(acme.tenant):
        endpoint = WebhookEndpoint.objects.create(label="second")
    assert endpoint.tenant_id == acme.tenant.pk


def test_reverse_relations_are_scoped_too(acme):
    with pytest.raises(TenantScopeError):
        list(acme.tenant.webhook_endpoints.all())
    with tenant_scope(acme.tenant):
        assert list(acme.tenant.webhook_endpoints.all()) == [acme.endpoint]


def test_scopes_nest_and_restore(acme, globex):
    assert current_tenant_or_none() is None
    with tenant_scope(acme.tenant):
        with tenant_scope(globex.tenant):
            assert current_tenant() == globex.tenant
        assert current_tenant() == acme.tenant
    assert current_tenant_or_none() is None
    with pytest.raises(TenantScopeError):
        current_tenant()


def test_scope_as_decorator(acme):
    @tenant_scope(acme.tenant)
    def count_endpoints():
        return WebhookEndpoint.objects.count()

    assert count_endpoints() == 1
    assert count_endpoints() == 1  # reusable


def test_there_is_no_scope_without_a_tenant():
    with pytest.raises(TenantScopeError):
        tenant_scope(None)
    with pytest.raises(TenantScopeError):
        tenant_scope(Tenant(name="unsaved", slug="unsaved"))


def test_unique_validation_works_outside_a_scope(make_tenant):
    """ModelForms (the admin) validate uniqueness through the default manager."""
    from django.core.exceptions import ValidationError

    acme = make_tenant("Acme", owner_email="owner@acme.test")
    owner = Membership.all_tenants.get(tenant=acme.tenant)
    duplicate = Membership(tenant=acme.tenant, user=owner.user, role="viewer")
    with pytest.raises(ValidationError):
        duplicate.full_clean()
