from rest_framework.permissions import BasePermission

from identity.services.tokens import SERVICE_ROLE


class IsServiceAccount(BasePermission):
    """Bearer token of a service account (``role: "service"``); user tokens get 403."""

    message = "Only service accounts may call this endpoint."

    def has_permission(self, request, view):
        claims = getattr(request.auth, "claims", None) or {}
        return bool(request.user and request.user.is_authenticated and claims.get("role") == SERVICE_ROLE
                    and getattr(request.user, "role", None) == SERVICE_ROLE)
