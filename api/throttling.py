"""Per API key (or per member and tenant) request rate, kept in the configured cache.

The rate is BILLINGWATCH_API_RATE (e.g. "600/min"); over it the answer is 429
with Retry-After. Unauthenticated requests are refused before throttling.
"""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api"

    def get_rate(self):
        return settings.BILLINGWATCH_API_RATE or None

    def get_cache_key(self, request, view):
        access = getattr(request, "access", None)
        if access is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": access.throttle_key}
