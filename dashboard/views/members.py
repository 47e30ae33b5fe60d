"""Members (invite, change role, remove) and API keys (create, shown once; revoke)."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dashboard.access import tenant_page
from dashboard.forms import ApiKeyForm, InviteForm, RemoveForm, RoleForm
from dashboard.invitations import send_invitation
from tenants.keys import issue_key, revoke_key
from tenants.members import MemberError, change_role, invite_member, remove_member
from tenants.models import ApiKey, Membership


def _page(request, status=200, **extra):
    tenant = request.member.tenant
    return render(request, "dashboard/members.html", {
        "members": Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__username"),
        "keys": ApiKey.objects.filter(tenant=tenant).order_by("revoked_at", "-created_at"),
        "roles": Membership.Role.choices,
        "invite_form": extra.pop("invite_form", None) or InviteForm(),
        "key_form": extra.pop("key_form", None) or ApiKeyForm(),
        **extra,
    }, status=status)


def _back(request):
    return redirect("dashboard:members", tenant_slug=request.member.tenant.slug)


@tenant_page
def members(request):
    return _page(request)


@tenant_page
@require_POST
def invite(request):
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation = invite_member(request.member.tenant, form.cleaned_data["email"], form.cleaned_data["role"],
                                       by=request.user)
        except MemberError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            send_invitation(request, invitation)
            messages.success(request, f"Invitation sent to {invitation.membership.user.email}.")
            return _back(request)
    return _page(request, status=400, invite_form=form)


def _change_member(request, form, change, done: str):
    """Run one membership change from a posted form; MemberError is shown on the page, nothing changed."""
    if not form.is_valid():
        return _page(request, status=400, member_error="Choose a member" + (" and a role." if "role" in form.fields
                                                                           else "."))
    try:
        change(request.member.tenant, **form.cleaned_data, by=request.user)
    except MemberError as exc:
        return _page(request, status=400, member_error=exc.message)
    messages.success(request, done.format(**form.cleaned_data))
    return _back(request)


@tenant_page
@require_POST
def member_role(request):
    return _change_member(request, RoleForm(request.POST), _change_role, "{member} is now {role}.")


@tenant_page
@require_POST
def member_remove(request):
    return _change_member(request, RemoveForm(request.POST), _remove, "{member} no longer has access.")


def _change_role(tenant, *, member, role, by):
    return change_role(tenant, member, role, by=by)


def _remove(tenant, *, member, by):
    return remove_member(tenant, member, by=by)


@tenant_page
@require_POST
def key_create(request):
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, key_form=form)
    key, text = issue_key(request.member.tenant, form.cleaned_data["name"], read_only=form.cleaned_data["read_only"])
    return _page(request, new_key=key, new_key_text=text)


@tenant_page
@require_POST
def key_revoke(request, prefix):
    key = ApiKey.objects.filter(tenant=request.member.tenant, prefix=prefix).first()
    if key is None:
        raise Http404("No such key")
    revoke_key(key)
    messages.success(request, f"Key {key.name} revoked: it stops working now.")
    return _back(request)
