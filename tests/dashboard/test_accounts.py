"""Sign-up (and the setting that turns it off), login, password reset by e-mail."""

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from tenants.models import Membership, Tenant
from tenants.scope import tenant_scope
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db
SIGNUP = {"email": "Founder@Example.com", "password": "a long and unusual passphrase", "company": "Initech",
          "slug": ""}


def test_signup_creates_user_tenant_and_webhook_url_and_logs_in():
    client = Client()
    response = client.post("/signup/", SIGNUP)
    assert response.status_code == 302 and response.url == "/t/initech/"
    tenant = Tenant.objects.get(slug="initech")
    with tenant_scope(tenant):
        membership = Membership.objects.select_related("user").get()
        assert WebhookEndpoint.objects.exists()
    assert (membership.user.email, membership.role) == ("founder@example.com", "owner")
    assert membership.user.check_password(SIGNUP["password"])
    page = client.get(response.url).content.decode()
    assert "Welcome to BillingWatch" in page and "/webhooks/stripe/" in page


@pytest.mark.parametrize("data, message", [
    ({"password": "password"}, "This password is too common."),
    ({"slug": "Not A Slug"}, "Enter a valid “slug”"),
    ({"company": "   "}, "This field is required."),
])
def test_signup_errors_create_nothing(data, message):
    response = Client().post("/signup/", {**SIGNUP, **data})
    assert response.status_code == 400 and message in response.content.decode()
    assert not Tenant.objects.exists() and not get_user_model().objects.exists()


def test_signup_with_a_taken_slug_creates_nothing(acme):
    response = Client().post("/signup/", {**SIGNUP, "slug": acme.tenant.slug})
    assert response.status_code == 400 and "already exists" in response.content.decode()
    assert not get_user_model().objects.filter(email="founder@example.com").exists()


def test_signup_can_be_turned_off(settings):
    settings.BILLINGWATCH_SIGNUP_ENABLED = False
    assert Client().get("/signup/").status_code == 404
    assert Client().post("/signup/", SIGNUP).status_code == 404
    assert not Tenant.objects.exists()
    assert "Create an account" not in Client().get("/accounts/login/").content.decode()


def test_login_and_logout(acme):
    user = get_user_model().objects.create_user("ann@example.com", "ann@example.com", "a long and unusual passphrase")
    with tenant_scope(acme.tenant):
        Membership.objects.create(tenant=acme.tenant, user=user, role="viewer")
    client = Client()
    response = client.post("/accounts/login/", {"username": "ann@example.com", "password": "wrong"})
    assert "Please enter a correct username and password" in response.content.decode()
    response = client.post("/accounts/login/", {"username": "ann@example.com",
                                                "password": "a long and unusual passphrase"}, follow=True)
    assert response.redirect_chain[-1][0] == f"/t/{acme.tenant.slug}/"
    response = client.post("/accounts/logout/")
    assert response.url == "/accounts/login/"
    assert client.get(f"/t/{acme.tenant.slug}/").status_code == 302


def test_password_reset_by_email():
    get_user_model().objects.create_user("ann", "ann@example.com", "a long and unusual passphrase")
    client = Client()
    response = client.post("/accounts/password_reset/", {"email": "ann@example.com"}, follow=True)
    assert "Check your e-mail" in response.content.decode()
    [message] = mail.outbox
    link = next(line for line in message.body.splitlines() if "/accounts/reset/" in line)
    response = client.get(link.replace("http://testserver", ""), follow=True)
    assert "Choose a password" in response.content.decode()
    response = client.post(response.redirect_chain[-1][0], {"new_password1": "another long passphrase 7",
                                                            "new_password2": "another long passphrase 7"}, follow=True)
    assert "Password saved" in response.content.decode()
    assert get_user_model().objects.get(username="ann").check_password("another long passphrase 7")
