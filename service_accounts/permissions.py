from rest_framework.permissions import BasePermission

from service_accounts.authentication import ServiceAccess


class IsServiceAccount(BasePermission):
    """A service token obtained with client credentials (a usable ServiceClient behind it). User
    tokens get 403, including a session token of a user whom staff gave the role ``service`` by hand."""

    message = "Only service accounts may call this endpoint."

    def has_permission(self, request, view):
        return isinstance(request.auth, ServiceAccess)
