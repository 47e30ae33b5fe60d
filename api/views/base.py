"""The base of every API view: authenticate, resolve the tenant, run the whole request in its scope.

The scope is entered right after authentication (before permissions,
throttling, the handler and serialization) and left when dispatch returns,
whatever happened. Which door a request came through is decided by the URL:
/api/v1/t/<slug>/… uses the dashboard session, everything else an API key.
"""

from contextlib import ExitStack

from rest_framework import exceptions
from rest_framework.views import APIView

from api.access import access_for_key, access_for_member
from api.authentication import ApiKeyAuthentication, MemberSessionAuthentication
from api.permissions import TenantAccess
from api.throttling import ApiKeyRateThrottle
from tenants.scope import tenant_scope

SLUG_KWARG = "tenant_slug"


class TenantScopedMixin:
    permission_classes = [TenantAccess]
    throttle_classes = [ApiKeyRateThrottle]

    def _through_session(self) -> bool:
        return SLUG_KWARG in (getattr(self, "kwargs", None) or {})

    def get_authenticators(self):
        if self._through_session():
            return [MemberSessionAuthentication()]
        return [ApiKeyAuthentication()]

    def dispatch(self, request, *args, **kwargs):
        with ExitStack() as stack:
            self._scope_stack = stack
            return super().dispatch(request, *args, **kwargs)

    def perform_authentication(self, request):
        user = request.user  # runs the authenticators (401 for a bad key)
        request.access = None
        if self._through_session():
            if user is None or not user.is_authenticated or request.auth is not None:
                return  # the permission check answers "not authenticated"
            request.access = access_for_member(user, self.kwargs[SLUG_KWARG])
        elif request.auth is not None:
            request.access = access_for_key(request.auth)
        if request.access is not None:
            self._scope_stack.enter_context(tenant_scope(request.access.tenant))

    @property
    def tenant(self):
        return self.request.access.tenant


class TenantAPIView(TenantScopedMixin, APIView):
    pass
