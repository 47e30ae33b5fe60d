"""Members of a tenant: invite, change role, remove. One place for the rules, whoever calls.

- Owners and admins manage members; viewers cannot (the dashboard refuses their writes first).
- Only an owner may make someone an owner, or change or remove an owner.
- A tenant always keeps at least one owner.
Runs in the tenant's scope. Members are addressed by username (no sequential ids in URLs).
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from tenants.models import Membership, Tenant

Role = Membership.Role


class MemberError(ValueError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field


@dataclass(frozen=True)
class Invitation:
    membership: Membership
    user_created: bool  # a new account without a password: it needs a set-password link


def _role_of(tenant: Tenant, user) -> str | None:
    return Membership.objects.filter(tenant=tenant, user=user).values_list("role", flat=True).first()


def _check_manager(tenant: Tenant, by, *roles_touched: str) -> None:
    mine = _role_of(tenant, by)
    if mine not in (Role.OWNER, Role.ADMIN):
        raise MemberError("only owners and admins manage members")
    if Role.OWNER in roles_touched and mine != Role.OWNER:
        raise MemberError("only an owner can grant, change or remove the owner role", "role")


def _member(tenant: Tenant, username: str) -> Membership:
    membership = Membership.objects.select_related("user").filter(tenant=tenant, user__username=username).first()
    if membership is None:
        raise MemberError("no such member", "member")
    return membership


def _keeps_an_owner(tenant: Tenant, leaving: Membership) -> None:
    if leaving.role == Role.OWNER and not Membership.objects.filter(tenant=tenant, role=Role.OWNER).exclude(
        pk=leaving.pk
    ).exists():
        raise MemberError("a tenant needs at least one owner: make someone else an owner first", "member")


@transaction.atomic
def invite_member(tenant: Tenant, email: str, role: str, *, by) -> Invitation:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise MemberError("enter a valid e-mail address", "email") from None
    if role not in Role.values:
        raise MemberError(f"role must be one of {', '.join(Role.values)}", "role")
    _check_manager(tenant, by, role)
    user_model = get_user_model()
    user = user_model.objects.filter(email__iexact=email).first()
    created = user is None
    if created:
        user = user_model.objects.create_user(username=email, email=email)  # no usable password yet
    elif Membership.objects.filter(tenant=tenant, user=user).exists():
        raise MemberError(f"{email} is already a member", "email")
    return Invitation(Membership.objects.create(tenant=tenant, user=user, role=role), created)


@transaction.atomic
def change_role(tenant: Tenant, username: str, role: str, *, by) -> Membership:
    if role not in Role.values:
        raise MemberError(f"role must be one of {', '.join(Role.values)}", "role")
    membership = _member(tenant, username)
    _check_manager(tenant, by, role, membership.role)
    if role != Role.OWNER:
        _keeps_an_owner(tenant, membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def remove_member(tenant: Tenant, username: str, *, by) -> None:
    membership = _member(tenant, username)
    _check_manager(tenant, by, membership.role)
    _keeps_an_owner(tenant, membership)
    membership.delete()
