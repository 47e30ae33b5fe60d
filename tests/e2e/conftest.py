"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium) against pytest-django's live_server.

Without Chromium the tests skip on a developer's machine, and fail under CI=true
(.ci/run installs it with apt). Screenshots go to test-artifacts/ (gitignored).
"""

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tenants.models import Membership
from tenants.scope import tenant_scope

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are ordinary synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "a long and unusual passphrase"


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.base = live_server.url
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def make_user(tenant, role="owner", email="founder@example.com"):
    user = get_user_model().objects.create_user(email, email, PASSWORD)
    with tenant_scope(tenant):
        Membership.objects.create(tenant=tenant, user=user, role=role)
    return user


def log_in(page, email="founder@example.com"):
    page.goto(page.base + "/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
