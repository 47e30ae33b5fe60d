"""The invitation e-mail: a link to set a password (Django's reset-confirm view) or, for an existing account, a note."""

from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tenants.members import Invitation


def send_invitation(request, invitation: Invitation) -> None:
    user, tenant = invitation.membership.user, invitation.membership.tenant
    set_password_url = None
    if invitation.user_created:
        path = reverse("password_reset_confirm", kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)), "token": default_token_generator.make_token(user),
        })
        set_password_url = request.build_absolute_uri(path)
    context = {
        "tenant": tenant, "role": invitation.membership.role, "inviter": request.user,
        "set_password_url": set_password_url, "username": user.get_username(),
        "dashboard_url": request.build_absolute_uri(reverse("dashboard:overview", kwargs={"tenant_slug": tenant.slug})),
        "login_url": request.build_absolute_uri(reverse("login")),
    }
    send_mail(f"You have been invited to {tenant.name} on BillingWatch",
              render_to_string("registration/invitation_email.txt", context), None, [user.email])
