"""DRF authentication for device sessions: a bearer access token with ``sid``, or the browser's session cookie."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication, CSRFCheck

from core.errors import ApiError, InvalidToken
from identity.bearer import CHALLENGE, bearer_claims
from sessions_app.models import DeviceSession
from sessions_app.selectors import session_for_claims
from sessions_app.services import session_use


@dataclass(frozen=True)
class AccessContext:
    """``request.auth`` for a bearer request of a device session: the verified claims and the live session row."""

    claims: dict
    session: DeviceSession


class BearerSessionAuthentication(BaseAuthentication):
    """An access token with ``sid`` whose session is usable now. Tokens without ``sid`` (service tokens) are
    left to service_accounts.authentication."""

    def authenticate(self, request):
        claims = bearer_claims(request)
        if claims is None or "sid" not in claims:
            return None
        session = session_for_claims(claims)
        refusal = session_use(session, request=request)  # the one rule (sessions_app.policy), applied
        if refusal is not None:
            raise InvalidToken(refusal.message, code=refusal.code, headers=CHALLENGE)
        return session.user, AccessContext(claims=claims, session=session)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


@dataclass(frozen=True)
class BrowserContext:
    """``request.auth`` for cookie requests: the live row, or (cache hit, ``@cookie_cache_ok`` views
    only) None and the cookie-cache ``snapshot``."""

    session: DeviceSession | None
    snapshot: dict | None = None
    claims = None


class CsrfFailed(ApiError):
    status_code = 403
    default_code = "csrf_failed"
    default_detail = "CSRF check failed: send the X-CSRFToken header with the csrftoken cookie's value."


class SessionCookieAuthentication(BaseAuthentication):
    """The browser's session cookie (sessions_app.browser), after the bearer classes: a request with a
    bearer token never gets here. Unsafe methods need Django's CSRF token (X-CSRFToken)."""

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
        check = CSRFCheck(lambda req: None)
        check.process_request(request._request)
        reason = check.process_view(request._request, None, (), {})
        if reason:
            raise CsrfFailed(f"CSRF check failed: {reason}")

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


def request_session(request) -> DeviceSession | None:
    """The DeviceSession the request is authenticated with, or None."""
    auth = getattr(request, "auth", None)
    return getattr(auth, "session", None)
