"""API key authentication: `Authorization: Bearer bw_<prefix>_<secret>`.

No header: not authenticated (401). A wrong, revoked or malformed key: 401.
Both answer with `WWW-Authenticate: Bearer realm="api"`. The tenant scope is
entered by the view base class (api.views.base) around the whole request.
"""

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions

from tenants.keys import find_active_key, note_use

REALM = 'Bearer realm="api"'


class ApiKeyUser(AnonymousUser):
    """The principal of an API key request: no Django user, but authenticated."""

    @property
    def is_authenticated(self):
        return True


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <api key>'.")
        key = find_active_key(header[1])
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        note_use(key)
        return ApiKeyUser(), key

    def authenticate_header(self, request):
        return REALM


class MemberSessionAuthentication(authentication.SessionAuthentication):
    """The dashboard's session, for /api/v1/t/<slug>/… (CSRF is enforced on writes, as DRF does)."""
