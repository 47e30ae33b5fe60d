from alerts import channels
from alerts.models import AlertDelivery
from tenants.scope import tenant_scope


def make_channel(tenant, kind="webhook", config=None, **fields):
    with tenant_scope(tenant):
        return channels.create_channel(name=fields.pop("name", f"{kind} channel"), kind=kind, config=config or {}, **fields)


def deliveries(tenant, **filters):
    with tenant_scope(tenant):
        return list(AlertDelivery.objects.filter(**filters).order_by("id"))


def refreshed(obj):
    return type(obj).all_tenants.get(pk=obj.pk)
