"""The issue's browser scenarios, in headless Chromium."""

from datetime import timedelta

import pytest
from django.utils import timezone

from anomalies.models import Anomaly
from tenants.scope import tenant_scope
from tests.anomalies.events import event, process, store
from tests.dashboard.conftest import make_anomaly
from tests.e2e.conftest import log_in, make_user, shot
from webhooks.models import StripeEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_newcomer_follows_the_setup_guide_and_sees_the_test_event(page, make_tenant):
    tenant = make_tenant("Newco", secret=None).tenant
    make_user(tenant)
    log_in(page)
    page.wait_for_selector("[data-testid=setup-guide]")
    assert "/webhooks/stripe/" in page.inner_text("[data-testid=webhook-url]")
    assert page.is_disabled("[data-testid=send-test]")
    shot(page, "setup-guide")
    page.fill("[data-testid=secret-input]", "whsec_newcosecret0123456789")
    page.click("button:has-text('Save secret')")
    page.wait_for_selector("text=Signing secret …")
    page.click("[data-testid=send-test]")
    page.wait_for_selector("[data-testid=event-table]")
    with tenant_scope(tenant):
        stored = StripeEvent.objects.get()
    assert stored.stripe_id in page.inner_text("[data-testid=event-table]")
    assert "test mode" in page.inner_text("main")
    shot(page, "events-after-test-event")


def test_triage_an_anomaly_from_the_list_to_resolved(page, acme):
    make_user(acme.tenant)
    anomaly = make_anomaly(acme.tenant, severity="critical", title="Duplicate charge of 49.00 USD")
    make_anomaly(acme.tenant, severity="low", title="Something small")
    log_in(page)
    page.click("nav.sidenav >> text=Anomalies")
    page.click("text=Duplicate charge of 49.00 USD")
    page.wait_for_selector("[data-testid=anomaly-panel]")
    shot(page, "anomaly-open")
    page.click("[data-testid=resolve]")
    page.wait_for_selector("[data-testid=anomaly-status]:has-text('Resolved')")
    assert "Open → Resolved" in page.inner_text("[data-testid=history]")
    with tenant_scope(acme.tenant):
        assert Anomaly.objects.get(pk=anomaly.pk).status == "resolved"
    page.goto(f"{page.base}/t/{acme.tenant.slug}/anomalies/")
    assert "Duplicate charge" not in page.inner_text("main")  # resolved: no longer needs attention
    page.select_option("[data-testid=status-filter]", "resolved")
    page.click("button:has-text('Filter')")
    assert "Duplicate charge of 49.00 USD" in page.inner_text("[data-testid=anomaly-table]")


def test_out_of_range_threshold_shows_the_validation_error(page, acme):
    make_user(acme.tenant)
    log_in(page)
    page.goto(f"{page.base}/t/{acme.tenant.slug}/detectors/")
    card = page.locator("[data-testid=detector-revenue_drop]")
    card.locator("input[name=drop]").fill("2")
    card.locator("button:has-text('Save')").click()
    error = page.locator("[data-testid=detector-revenue_drop] [data-testid=threshold-error]")
    error.wait_for()
    assert error.inner_text() == "must be between 0.05 and 0.95"
    assert page.locator("[data-testid=detector-revenue_drop] input[name=drop]").input_value() == "2"
    shot(page, "detector-validation-error")


def test_charts_render_with_data(page, acme):
    make_user(acme.tenant)
    now = timezone.now()
    store(acme.tenant, *[event("charge.succeeded", now - timedelta(days=d, hours=1), amount=1000 + d * 10,
                               currency="usd") for d in range(30)])
    store(acme.tenant, *[event("charge.failed", now - timedelta(hours=h), amount=500, currency="usd")
                         for h in (2, 5)])
    process()
    log_in(page)
    page.wait_for_selector("canvas[data-chart=revenue-usd]")
    for name in ("revenue-usd", "failures"):
        painted = page.evaluate(
            """(name) => {
                const canvas = document.querySelector(`canvas[data-chart="${name}"]`);
                const chart = window.Chart && window.Chart.getChart(canvas);
                if (!canvas || !chart || canvas.width === 0) return 0;
                const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                let painted = 0;
                for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
                return painted;
            }""",
            name,
        )
        assert painted > 1000, (name, painted)
    shot(page, "overview")


def test_phone_width_has_no_horizontal_scroll(browser, live_server, acme):
    make_user(acme.tenant)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.base = live_server.url
    log_in(page)
    for path in ("", "anomalies/", "events/", "webhooks/", "detectors/", "members/", "alerts/"):
        page.goto(f"{live_server.url}/t/{acme.tenant.slug}/{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, overflow)
    shot(page, "phone-webhooks")
    context.close()
