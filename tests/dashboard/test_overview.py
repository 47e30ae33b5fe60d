"""The overview: the setup guide until the first event, then KPIs and charts from anomalies.metrics."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.scope import tenant_scope
from tests.anomalies.events import event, process, store
from tests.dashboard.conftest import make_anomaly, url
from tenants.models import Plan, MonthlyUsage
from webhooks.quotas import month_of

pytestmark = pytest.mark.django_db


def test_setup_guide_until_the_first_event(acme, owner):
    page = owner.get(url(acme.tenant)).content.decode()
    assert 'data-testid="setup-guide"' in page and acme.endpoint.path in page
    store(acme.tenant, event("charge.succeeded", timezone.now(), livemode=False))
    page = owner.get(url(acme.tenant)).content.decode()
    assert 'data-testid="setup-guide"' not in page and "Overview" in page


def test_overview_numbers_and_charts(acme, owner):
    now = timezone.now()
    store(acme.tenant, *[event("charge.succeeded", now - timedelta(days=d, minutes=5), amount=1000, currency="usd")
                         for d in range(0, 40)])
    store(acme.tenant, event("charge.failed", now - timedelta(hours=1), amount=500, currency="usd"))
    process()
    make_anomaly(acme.tenant, severity="critical", title="Something is off")
    page = owner.get(url(acme.tenant)).content.decode()
    assert "Revenue · USD" in page and 'id="chart-revenue-usd"' in page and 'id="chart-failures"' in page
    assert "Something is off" in page and ">1 critical<" in page
    assert "50.0 %" in page  # 1 of 2 charges in the last 24 hours failed


def test_overview_honours_the_mode(acme, owner):
    store(acme.tenant, event("charge.succeeded", timezone.now(), livemode=False, amount=1000, currency="eur"))
    assert "Revenue · EUR" not in owner.get(url(acme.tenant)).content.decode()
    assert "Revenue · EUR" in owner.get(url(acme.tenant, "?mode=test")).content.decode()


def test_quota_banner(acme, owner):
    acme.tenant.plan = Plan.objects.create(name="tiny", monthly_event_quota=10)
    acme.tenant.save()
    with tenant_scope(acme.tenant):
        MonthlyUsage.objects.create(month=month_of(timezone.now()), processed=10, held=3)
    page = owner.get(url(acme.tenant, "anomalies/")).content.decode()
    assert 'data-testid="quota-banner"' in page and "3 held" in page
