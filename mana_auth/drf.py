"""Django REST framework integration: authentication, permissions, and the current principal.

    REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": ["mana_auth.drf.JwtAuthentication"],
                      "EXCEPTION_HANDLER": "mana_auth.drf.exception_handler"}  # optional: the error envelope

    class ReportApi(APIView):
        permission_classes = [HasRole("admin")]
        def get(self, request):
            return Response({"for": principal(request).email})

``request.user`` and ``request.auth`` are both the ``Principal``.
"""

from __future__ import annotations

import functools
import logging

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from mana_auth import conf
from mana_auth.errors import InvalidToken, ProviderUnavailable
from mana_auth.principal import Principal

logger = logging.getLogger("mana_auth")


class TokenRefused(exceptions.AuthenticationFailed):
    default_code = "invalid_token"
    default_detail = "The access token is invalid or expired."


class AuthUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "auth_unavailable"
    default_detail = "The identity provider cannot be reached to check this token. Try again shortly."


def _translate(exc: InvalidToken) -> exceptions.APIException:
    if isinstance(exc, ProviderUnavailable):
        logger.warning("mana_auth: %s", exc)
        return AuthUnavailable()
    logger.info("mana_auth: access token refused: %s", exc.reason)
    return TokenRefused()


class JwtAuthentication(BaseAuthentication):
    """Bearer access tokens verified locally with the ``MANA_AUTH`` settings. No header: anonymous (or
    the development principal while the bypass is on); a bad token: 401 ``invalid_token``."""

    def __init__(self):
        self.dev_principal = conf.dev_principal()  # raises ImproperlyConfigured if asked for without DEBUG
        self.verifier = conf.get_verifier()

    def authenticate(self, request):
        try:
            token = conf.bearer_token(get_authorization_header(request))
            if token is None:
                return (self.dev_principal, self.dev_principal) if self.dev_principal else None
            principal = self.verifier.verify(token)
        except InvalidToken as exc:
            raise _translate(exc) from None
        return principal, principal

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


def principal(request) -> Principal | None:
    """The Principal of a DRF (or plain Django) request, or None when it is anonymous."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, Principal):
        return auth
    found = getattr(request, "principal", None)
    return found if isinstance(found, Principal) else None


class IsAuthenticated(BasePermission):
    """Any verified principal (user or service)."""

    def has_permission(self, request, view):
        return principal(request) is not None


@functools.cache
def HasRole(*roles: str) -> type[BasePermission]:  # noqa: N802 - reads like a class in permission_classes
    """``permission_classes = [HasRole("admin")]``: the principal's ``role`` is one of ``roles``."""
    if not roles:
        raise ValueError("HasRole needs at least one role")

    class _HasRole(BasePermission):
        message = f"This needs the role {' or '.join(roles)}."

        def has_permission(self, request, view):
            found = principal(request)
            return found is not None and found.role in roles

    _HasRole.__name__ = _HasRole.__qualname__ = f"HasRole({', '.join(map(repr, roles))})"
    return _HasRole


@functools.cache
def HasOrgRole(*roles: str, org_kwarg: str | None = None) -> type[BasePermission]:  # noqa: N802
    """``permission_classes = [HasOrgRole("admin")]``: the token carries an active organization in which
    the principal has at least that role (owner > admin > member). With ``org_kwarg="org_id"`` the
    active organization must also be the one named by that URL keyword."""
    if not roles:
        raise ValueError("HasOrgRole needs at least one role")

    class _HasOrgRole(BasePermission):
        message = f"This needs the organization role {' or '.join(roles)}."

        def has_permission(self, request, view):
            found = principal(request)
            if found is None or found.org is None or not conf.org_role_satisfies(found.org_role, roles):
                return False
            if org_kwarg is not None:
                return str(getattr(view, "kwargs", {}).get(org_kwarg)) == found.org
            return True

    _HasOrgRole.__name__ = _HasOrgRole.__qualname__ = f"HasOrgRole({', '.join(map(repr, roles))})"
    return _HasOrgRole


class IsSessionActive(BasePermission):
    """For high-value views: asks the provider (introspection, cached ~10 s) whether the token's
    session is still alive. Needs ``MANA_AUTH["INTROSPECT_URL"]`` and service credentials."""

    def has_permission(self, request, view):
        found = principal(request)
        if found is None:
            return False
        if found.token == "":
            return True  # the development principal has no session to check
        try:
            conf.get_verifier().ensure_active(found)
        except InvalidToken as exc:
            raise _translate(exc) from None
        return True


def exception_handler(exc, context):
    """DRF's handler, re-rendered in the provider's envelope ``{"error": {"code", "message", "fields"?}}``."""
    from rest_framework.views import exception_handler as drf_handler

    response = drf_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"nonFieldErrors": exc.detail}
        fields = {str(name): [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
                  for name, msgs in detail.items()}
        error = {"code": "validation_error", "message": "The request is invalid.", "fields": fields}
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        code = codes if isinstance(codes, str) else "error"
        if isinstance(exc, exceptions.NotAuthenticated):
            code = "not_authenticated"
        elif isinstance(exc, exceptions.PermissionDenied):
            code = "permission_denied"
        error = {"code": code, "message": str(getattr(exc, "detail", "")) or "The request failed."}
    response.data = {"error": error}
    return response
