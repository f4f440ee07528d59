"""Plain Django integration: a middleware that sets ``request.principal`` and a view decorator.

    MIDDLEWARE = [..., "mana_auth.django.JwtMiddleware"]

    @require_principal(role="admin")
    def report(request):
        return JsonResponse({"for": request.principal.email})

Errors answer in the provider's envelope: 401 ``invalid_token`` / ``not_authenticated``, 403
``permission_denied``, 503 ``auth_unavailable`` (provider unreachable: the token could not be checked).
"""

from __future__ import annotations

import functools
import logging

from django.http import JsonResponse

from mana_auth import conf
from mana_auth.errors import InvalidToken, ProviderUnavailable

logger = logging.getLogger("mana_auth")

_UNSET = object()


def error_response(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if status == 401:
        error = ', error="invalid_token"' if code == "invalid_token" else ""
        response["WWW-Authenticate"] = f'Bearer realm="api"{error}'
    return response


def _refused(exc: InvalidToken) -> JsonResponse:
    if isinstance(exc, ProviderUnavailable):
        logger.warning("mana_auth: %s", exc)
        return error_response(503, "auth_unavailable",
                              "The identity provider cannot be reached to check this token. Try again shortly.")
    logger.info("mana_auth: access token refused: %s", exc.reason)
    return error_response(401, "invalid_token", "The access token is invalid or expired.")


def _authenticate(request, dev_principal):
    """(principal or None, None) or (None, error response)."""
    try:
        token = conf.bearer_token(request.META.get("HTTP_AUTHORIZATION"))
        if token is None:
            return dev_principal, None
        return conf.get_verifier().verify(token), None
    except InvalidToken as exc:
        return None, _refused(exc)


class JwtMiddleware:
    """Sets ``request.principal`` (None without a bearer token); an invalid token answers 401 at once."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.dev_principal = conf.dev_principal()  # raises ImproperlyConfigured if asked for without DEBUG
        conf.get_verifier()  # bad settings fail at startup, not on the first request

    def __call__(self, request):
        principal, refused = _authenticate(request, self.dev_principal)
        if refused is not None:
            return refused
        request.principal = principal
        return self.get_response(request)


def require_principal(view=None, *, role=None, org_role=None, check_revocation: bool = False):
    """Decorator: 401 without a verified principal, 403 unless its ``role`` is ``role`` (a string or
    several) and, with ``org_role``, its active organization role is at least that. ``check_revocation``
    also asks the provider whether the session is alive. Works with or without JwtMiddleware.
    Usable bare (``@require_principal``) or called (``@require_principal(role="admin")``)."""
    roles = (role,) if isinstance(role, str) else tuple(role or ())
    org_roles = (org_role,) if isinstance(org_role, str) else tuple(org_role or ())

    def decorate(func):
        @functools.wraps(func)
        def wrapper(request, *args, **kwargs):
            principal = getattr(request, "principal", _UNSET)
            if principal is _UNSET:
                principal, refused = _authenticate(request, conf.dev_principal())
                if refused is not None:
                    return refused
                request.principal = principal
            if principal is None:
                return error_response(401, "not_authenticated", "Authentication credentials were not provided.")
            if roles and principal.role not in roles:
                return error_response(403, "permission_denied", "You do not have permission to do this.")
            if org_roles and (principal.org is None or not conf.org_role_satisfies(principal.org_role, org_roles)):
                return error_response(403, "permission_denied", "You do not have permission to do this.")
            if check_revocation and principal.token:
                try:
                    conf.get_verifier().ensure_active(principal)
                except InvalidToken as exc:
                    return _refused(exc)
            return func(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate
