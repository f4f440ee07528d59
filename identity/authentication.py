"""DRF authentication with our access tokens: signature and claims, then the session must be alive."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import PermissionDenied

from core.errors import ApiError, InvalidToken
from identity.services.tokens import TokenError, access_token_verify

logger = logging.getLogger(__name__)

# RFC 6750 3.1: a request that carried a bad token is told so in the challenge, not only in the body.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'}


@dataclass(frozen=True)
class AccessContext:
    """``request.auth`` for bearer requests: the verified claims and the live session row."""

    claims: dict
    session: object  # sessions_app.models.DeviceSession; None for a service token
    service_client: object = None  # service_accounts.models.ServiceClient, for a service token


class ServiceTokenNotAccepted(PermissionDenied):
    default_detail = "This endpoint does not accept service tokens."


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise InvalidToken("The Authorization header must be 'Bearer <accessToken>'.", headers=CHALLENGE)
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise InvalidToken(headers=CHALLENGE) from None
        try:
            claims = access_token_verify(token)
        except TokenError as exc:
            logger.info("access token refused: %s", exc.reason)
            raise InvalidToken(headers=CHALLENGE) from None
        if "sid" not in claims:  # only a service token verifies without a session
            return self._authenticate_service(request, claims)

        from sessions_app.models import DeviceSession
        from sessions_app.services import session_policy_expire, session_policy_violation
        from sessions_app.services import session_idle_revoke, session_touch

        session = DeviceSession.objects.select_related("user", "active_organization").filter(
            pk=_uuid_or_none(claims["sid"])).first()
        if session is None or not session.is_alive() or str(session.user_id) != claims["sub"]:
            raise InvalidToken("The session of this token has ended. Sign in again.", code="session_revoked",
                               headers=CHALLENGE)
        if not session.user.is_active:
            raise InvalidToken("This account is disabled.", code="session_revoked", headers=CHALLENGE)
        if session_idle_revoke(session, request=request):
            raise InvalidToken("This session was signed out after a period of inactivity.",
                               code="session_revoked", headers=CHALLENGE)
        limit = session_policy_violation(session)  # the active organization's session policy
        if limit is not None:
            session_policy_expire(session, limit, request=request)
            raise InvalidToken("This session has expired under your organization's session policy. Sign in again.",
                               code="session_expired", headers=CHALLENGE)
        session_touch(session)
        return session.user, AccessContext(claims=claims, session=session)

    def _authenticate_service(self, request, claims):
        """Service tokens are accepted only by views that say so (``accepts_service_tokens = True``):
        every other view assumes a user with a device session. The client must still be usable."""
        from service_accounts.selectors import service_client_for_claims

        client = service_client_for_claims(claims)
        if client is None:
            raise InvalidToken("The service account of this token is disabled or its secret was rotated.",
                               headers=CHALLENGE)
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if not getattr(view, "accepts_service_tokens", False):
            raise ServiceTokenNotAccepted()
        return client.user, AccessContext(claims=claims, session=None, service_client=client)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


@dataclass(frozen=True)
class BrowserContext:
    """``request.auth`` for cookie requests: the live row, or (cache hit, ``@cookie_cache_ok`` views
    only) None and the cookie-cache ``snapshot``."""

    session: object  # DeviceSession | None
    snapshot: dict | None = None
    claims = None


class CsrfFailed(ApiError):
    status_code = 403
    default_code = "csrf_failed"
    default_detail = "CSRF check failed: send the X-CSRFToken header with the csrftoken cookie's value."


class SessionCookieAuthentication(BaseAuthentication):
    """The browser's session cookie (sessions_app.browser), after the Bearer class: a request with an
    Authorization header never gets here. Unsafe methods need Django's CSRF token (X-CSRFToken)."""

    def authenticate(self, request):
        state = getattr(request._request, "browser", None)
        if state is None or not state.raw_key:
            return None
        if state.cache_allowed and state.snapshot() is not None:
            user, context = state.user(), BrowserContext(session=None, snapshot=state.snapshot())
        else:
            row = state.row
            if row is None:
                return None
            user, context = row.user, BrowserContext(session=row)
        if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            self.enforce_csrf(request)
        return user, context

    def enforce_csrf(self, request):
        from rest_framework.authentication import CSRFCheck

        check = CSRFCheck(lambda req: None)
        check.process_request(request._request)
        reason = check.process_view(request._request, None, (), {})
        if reason:
            raise CsrfFailed(f"CSRF check failed: {reason}")

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


def _uuid_or_none(value):
    import uuid

    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


def request_session(request):
    """The DeviceSession the request is authenticated with, or None."""
    auth = getattr(request, "auth", None)
    return getattr(auth, "session", None)
