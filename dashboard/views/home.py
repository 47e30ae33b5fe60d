"""The entry pages: / and /t/ send a member to a tenant; sign-up creates a user and a tenant."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render

from dashboard.access import memberships_of
from dashboard.forms import SignupForm
from tenants.onboarding import OnboardingError, create_tenant


@login_required
def home(request):
    memberships = memberships_of(request.user)
    if len(memberships) == 1 or (memberships and not request.user.is_staff):
        return redirect("dashboard:overview", tenant_slug=memberships[0].tenant.slug)
    return render(request, "dashboard/home.html", {"memberships": memberships,
                                                   "signup_enabled": settings.BILLINGWATCH_SIGNUP_ENABLED})


def signup(request):
    if not settings.BILLINGWATCH_SIGNUP_ENABLED:
        raise Http404("Self-service sign-up is turned off on this instance")
    if request.user.is_authenticated and request.method == "GET":
        return redirect("dashboard:home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                user = form.save()
                created = create_tenant(form.cleaned_data["company"], slug=form.cleaned_data["slug"] or None,
                                        owner_email=user.email)
        except OnboardingError as exc:
            form.add_error("slug" if "slug" in str(exc) else "company", str(exc))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("dashboard:overview", tenant_slug=created.tenant.slug)
    return render(request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200)
