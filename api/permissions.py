from rest_framework import exceptions, permissions


class TenantAccess(permissions.BasePermission):
    """Authenticated for a tenant; writes need a read-write key or a non-viewer membership."""

    def has_permission(self, request, view):
        access = getattr(request, "access", None)
        if access is None:
            return False
        if request.method in permissions.SAFE_METHODS or access.can_write:
            return True
        raise exceptions.PermissionDenied(
            "This API key is read-only." if access.api_key else "Viewers can only read.", code="read_only"
        )
