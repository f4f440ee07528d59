"""Browser session middleware: our session engine's cookies, ``request.user`` from our rows, and the
cookie-cache fast path for ``GET /api/v1/auth/session``.

Order in MIDDLEWARE: ``SessionFastPathMiddleware`` right after SecurityMiddleware (so a cache hit
costs one decryption and, with Redis, one cache lookup, and nothing else), ``BrowserSessionMiddleware``
where Django's SessionMiddleware was, ``BrowserAuthenticationMiddleware`` where Django's
AuthenticationMiddleware was (both subclass Django's, so admin's system checks and CSRF keep working).
"""

from __future__ import annotations

import io
import math
import time

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.functional import SimpleLazyObject
from django.utils.http import http_date
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer

from core.errors import ApiError, InvalidToken, exception_handler
from core.parsers import JSONParser
from core.responses import http_date_now, secret_json_response
from core.fast_path import add_csp
from identity.app_settings import app_settings as identity_settings
from identity.bearer import bearer_claims
from identity.services.tokens import access_token_issue
from security.app_settings import app_settings as security_settings
from security.ratelimit import ratelimit_hit
from sessions_app import cookie_cache
from sessions_app.app_settings import app_settings
from sessions_app.browser import BrowserState, SessionStore, session_payload, snapshot_for
from sessions_app.policy import session_refusal
from sessions_app.selectors import session_for_claims
from sessions_app.serializers import refresh_data, session_envelope_data
from sessions_app.services import session_touch

SESSION_PATH = "/api/v1/auth/session"
TOKEN_PATH = "/api/v1/auth/token"
ACCOUNTS_COOKIE_MAX_AGE = 90 * 24 * 3600


def session_response_headers(response, vary: str = "Cookie, Authorization"):
    """Headers of ``GET /api/v1/auth/session`` on every path (fast path, DRF view), and of ``GET token``
    on the fast path (``vary="Cookie"``, as the view): never stored by a cache (what
    add_never_cache_headers + no-store/private give, as constants on the hot path)."""
    response["Expires"] = http_date_now()
    response["Cache-Control"] = "max-age=0, no-cache, no-store, must-revalidate, private"
    response["Vary"] = vary
    return response


def render_session(payload: dict) -> bytes:
    return JSONRenderer().render({"user": payload["user"], "session": session_payload(payload["session"])})


# A snapshot this close to the end of the tokens it may mint leaves GET token to the view.
MIN_SNAPSHOT_TOKEN_SECONDS = 60


def snapshot_token_not_after(payload: dict, now: float | None = None) -> int | None:
    """Until when a token minted from this snapshot may live: no later than one minted when the snapshot
    was issued (``iat``, the last time the database vouched for the session), so nothing the snapshot
    mints outlives a logout it has not seen by more than a token minted just before that logout. None
    when that leaves less than a minute: the view mints from the row."""
    now = time.time() if now is None else now
    not_after = math.ceil(payload["iat"]) + int(identity_settings.ACCESS_TOKEN_TTL.total_seconds())
    return not_after if not_after - now >= MIN_SNAPSHOT_TOKEN_SECONDS else None


def token_from_snapshot(payload: dict, not_after: int) -> bytes:
    """``GET token``'s JSON, signed from the snapshot: the same claims the view puts in (the one
    signing path, ``access_token_issue``), with ``org``/``orgRole`` from the snapshot's active
    organization, expiring by ``not_after`` (``snapshot_token_not_after``)."""
    user, org = payload["user"], payload.get("org")
    access = access_token_issue(user=_SnapshotSubject(user["id"], user["email"], user["role"]),
                                session_id=payload["session"]["id"], not_after=not_after,
                                amr=payload["session"].get("amr"),
                                org_id=org["id"] if org else None, org_role=org["role"] if org else None)
    return JSONRenderer().render({"accessToken": access.token, "expiresIn": access.expires_in})


class _SnapshotSubject:
    __slots__ = ("pk", "email", "role")

    def __init__(self, pk, email, role):
        self.pk, self.email, self.role = pk, email, role


def _within_api_rate(request, user_id, scope: str | None = "api") -> bool:
    """Count the per-client rate limit the view would count (security.ratelimit.ApiRateThrottle), per user.
    False when over it: the view then answers (429 in the one error envelope, audited)."""
    if not security_settings.RATE_LIMIT_ENABLED or scope is None:
        return True
    try:
        ratelimit_hit(request=request, scope=scope, value=f"user:{user_id}")
    except ApiError:
        return False
    return True


SESSION_ALLOW = "GET, HEAD, OPTIONS"  # what DRF answers for the GET session and GET token views


def _answered(response, *, allow: str):
    """The headers a response answered before the view gets from the view and the middleware it skipped:
    the view's Allow, XFrameOptionsMiddleware's DENY, the static CSP (core.fast_path)."""
    response["Allow"] = allow
    response["X-Frame-Options"] = "DENY"
    return add_csp(response)


def _allow_header(view_class) -> str:
    allow = _allow.get(view_class)
    if allow is None:
        view = view_class()
        view.setup(HttpRequest())  # as in as_view(): a view with GET answers HEAD
        allow = _allow[view_class] = ", ".join(view.allowed_methods)  # as DRF's APIView answers
    return allow


_allow: dict[type, str] = {}


class BearerFastPathMiddleware:
    """Answer a ``GET`` with a device session's bearer token before the rest of the middleware and DRF,
    for the views that offer it (``bearer_fast_get(user, session) -> dict``, the data their ``get``
    renders too: GET me, the sessions list). What runs is what the DRF view runs for that request: the
    token verified once (``identity.bearer``), the session loaded in one statement
    (``sessions_app.selectors``; a view's ``bearer_fast_load(claims, now) -> (session, kwargs)`` loads it
    with what ``bearer_fast_get`` needs besides, in the same statement: the sessions list), the one rule
    (``sessions_app.policy``) and the activity touch, the view's rate limit. Anything else (no or a bad
    token, a service token, a refused session, over the rate limit, an unknown path, a request with a body
    or a query string) goes on to the view, which answers it in the one error envelope."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "GET" and "HTTP_AUTHORIZATION" in request.META and _bodiless(request.META):
            response = self._answer(request)
            if response is not None:
                return response
        return self.get_response(request)

    def _answer(self, request):
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return None
        view_class = getattr(match.func, "view_class", None)
        fast_get = getattr(view_class, "bearer_fast_get", None)
        if fast_get is None:
            return None
        try:
            claims = bearer_claims(request)
        except InvalidToken:
            return None
        if claims is None or "sid" not in claims:
            return None
        now = timezone.now()
        load = getattr(view_class, "bearer_fast_load", None)
        session, loaded = load(claims, now) if load is not None else (session_for_claims(claims), {})
        if session_refusal(session, now) is not None:
            return None  # the view applies the refusal (session_use) and answers it
        if not _within_api_rate(request, session.user_id, getattr(view_class, "api_rate_scope", "api")):
            return None
        activity = session.last_activity_at
        session_touch(session, now=now)
        if session.last_activity_at != activity:
            loaded = {}  # read before the touch wrote the row: the view reads it again (once a minute at most)
        request.resolver_match = match  # the route name of the metrics
        response = HttpResponse(JSONRenderer().render(fast_get(session.user, session, **loaded)),
                                content_type="application/json")
        return _answered(response, allow=_allow_header(view_class))


def _plain(meta) -> bool:
    """No chunked body and no query string: nothing a view's parameters or a streaming parser would read."""
    return "HTTP_TRANSFER_ENCODING" not in meta and not meta.get("QUERY_STRING")


def _bodiless(meta) -> bool:
    """No body and no query string: nothing a size limit or a view's parameters would look at."""
    return meta.get("CONTENT_LENGTH") in (None, "", "0") and _plain(meta)


REFRESH_PATH = "/api/v1/auth/refresh"
REFRESH_BODY_MAX_BYTES = 8 * 1024  # a refresh body is ~60 bytes; anything larger goes the whole way


class RefreshFastPathMiddleware:
    """Answer ``POST /api/v1/auth/refresh`` with a JSON body before the rest of the middleware and DRF:
    what the view runs (the ``api`` rate limit per address as its throttle counts it, the one JSON parser,
    ``refresh_data``: RefreshInput, session_refresh, the pair's JSON), every refusal rendered by the one
    exception handler (core.errors), the view's headers. Another content type, a chunked, empty or large
    body, a query string: the view answers."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == REFRESH_PATH and request.method == "POST":
            meta = request.META
            length = meta.get("CONTENT_LENGTH") or ""
            if (meta.get("CONTENT_TYPE", "").split(";")[0].strip().lower() == "application/json"
                    and length.isascii() and length.isdigit() and 0 < int(length) <= REFRESH_BODY_MAX_BYTES
                    and _plain(meta)):
                return self._answer(request)
        return self.get_response(request)

    def _answer(self, request):
        try:
            ratelimit_hit(request=request, scope="api")  # ApiRateThrottle's count for an anonymous request
            data = JSONParser().parse(io.BytesIO(request.body), "application/json",
                                      {"encoding": request.encoding or settings.DEFAULT_CHARSET})
            body = refresh_data(data, request=request)
        except APIException as exc:
            response = exception_handler(exc, {"request": request})
            if response is None:
                raise
            response.accepted_renderer = _JSON
            response.accepted_media_type = "application/json"
            response.renderer_context = {"request": request, "response": response}
            return _answered(response.render(), allow="POST, OPTIONS")
        return _answered(secret_json_response(body), allow="POST, OPTIONS")


_JSON = JSONRenderer()


class SessionFastPathMiddleware:
    """Answer ``GET /api/v1/auth/session`` and ``GET /api/v1/auth/token`` from a fresh cookie cache
    before anything else runs, and ``GET session`` without one (the cache off, stale or missing) from
    its row: the row loaded by the session cookie in one statement with the one rule applied
    (``BrowserSessionMiddleware``'s own request and response steps, so the cookies it writes are the
    same), the view's rate limit, the view's JSON (``session_envelope_data``). Anything unusual (Bearer
    header, revoked, a changed user or organization, rate limited, no session) goes on to the DRF view."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._browser_session = BrowserSessionMiddleware(get_response)

    def __call__(self, request):
        path = request.path_info
        if (path == SESSION_PATH or path == TOKEN_PATH) and request.method == "GET" \
                and "HTTP_AUTHORIZATION" not in request.META:
            state = BrowserState(request)
            payload = state.snapshot()
            if payload is not None and path == SESSION_PATH:
                response = HttpResponse(render_session(payload), content_type="application/json")
                return _answered(session_response_headers(response), allow=SESSION_ALLOW)
            not_after = snapshot_token_not_after(payload) if payload is not None and payload["up"]["active"] else None
            if not_after is not None and _within_api_rate(request, payload["user"]["id"]):
                response = HttpResponse(token_from_snapshot(payload, not_after), content_type="application/json")
                return _answered(session_response_headers(response, vary="Cookie"), allow=SESSION_ALLOW)
            request.browser = state  # the decryption already done is reused below
            if payload is None and path == SESSION_PATH and state.raw_key and _bodiless(request.META):
                response = self._session_from_row(request, state)
                if response is not None:
                    return response
        return self.get_response(request)

    def _session_from_row(self, request, state):
        self._browser_session.process_request(request)
        row = state.row
        if row is None or not _within_api_rate(request, row.user_id):
            return None  # the view answers (401, 429), its own middleware reading the cookie again
        response = HttpResponse(JSONRenderer().render(session_envelope_data(row.user, row)),
                                content_type="application/json")
        return _answered(self._browser_session.process_response(request, session_response_headers(response)),
                         allow=SESSION_ALLOW)


def _cookie_kwargs():
    return {"path": "/", "secure": app_settings.COOKIE_SECURE or None, "httponly": True, "samesite": "Lax"}


def _delete(response, name):
    response.delete_cookie(name, path="/", samesite="Lax")
    if app_settings.COOKIE_SECURE:  # delete_cookie omits Secure unless the name is __Host-/__Secure-
        response.cookies[name]["secure"] = True


class BrowserSessionMiddleware(SessionMiddleware):
    def process_request(self, request):
        cookie_cache.changed_in_request.set(set())
        state = getattr(request, "browser", None) or BrowserState(request)
        request.browser = state
        store = SessionStore(state.raw_key)
        store.request = request
        request.session = store

    def process_response(self, request, response):
        state = getattr(request, "browser", None)
        store = getattr(request, "session", None)
        if state is None or not isinstance(store, SessionStore):
            return response
        used = store.accessed or state.snapshot_used or store._row_loaded
        row = store._row if store._row_loaded and not state.cleared else None
        if row is not None and row.revoked_at is not None:  # ended during this request (API logout)
            row, state.cleared = None, True
        if row is not None and store.modified and response.status_code < 500:
            store.save()

        if row is not None:
            if state.key_changed or row.remember_me:
                # A persistent cookie follows the row's (sliding) expiry; without "stay signed in" it
                # is a browser-session cookie.
                max_age = max(0, int(row.expires_at.timestamp() - time.time())) if row.remember_me else None
                response.set_cookie(app_settings.SESSION_COOKIE, state.raw_key, max_age=max_age,
                                    expires=http_date(time.time() + max_age) if max_age is not None else None,
                                    **_cookie_kwargs())
            if str(row.user_id) in (cookie_cache.changed_in_request.get() or ()):
                # This request changed what a snapshot says (profile, organization, switch): the row in
                # hand predates it, so the next request loads the row and gets the new snapshot.
                if app_settings.CACHE_COOKIE in request.COOKIES:
                    _delete(response, app_settings.CACHE_COOKIE)
            elif not state.snapshot_used and app_settings.COOKIE_CACHE_TTL.total_seconds() > 0:
                response.set_cookie(app_settings.CACHE_COOKIE, snapshot_for(row, state.raw_key), **_cookie_kwargs())
        elif state.cleared or (state.had_key and store._row_loaded):
            # Signed out, or the cookie names a session that is gone: forget it.
            if state.had_key or state.key_changed:
                _delete(response, app_settings.SESSION_COOKIE)
            if app_settings.CACHE_COOKIE in request.COOKIES:
                _delete(response, app_settings.CACHE_COOKIE)

        if state.accounts_changed:
            others = state.other_rows() if state.other_keys else []
            if others:
                # Persistent only while every account in it is "stay signed in": otherwise closing the
                # browser must end that account here, as its own cookie would have.
                persistent = all(row.remember_me for _, row in others)
                max_age = min(ACCOUNTS_COOKIE_MAX_AGE, *(max(0, int(row.expires_at.timestamp() - time.time()))
                                                         for _, row in others)) if persistent else None
                response.set_cookie(app_settings.ACCOUNTS_COOKIE, ".".join(key for key, _ in others),
                                    max_age=max_age, **_cookie_kwargs())
            elif state.had_accounts_cookie:
                _delete(response, app_settings.ACCOUNTS_COOKIE)
        if used:
            patch_vary_headers(response, ("Cookie",))
        return response


class BrowserAuthenticationMiddleware(AuthenticationMiddleware):
    def process_request(self, request):
        state = request.browser
        request.user = SimpleLazyObject(lambda: state.user() or AnonymousUser())

        async def auser():
            from asgiref.sync import sync_to_async

            await sync_to_async(lambda: request.user.pk)()
            return request.user

        request.auser = auser

    def process_view(self, request, view_func, view_args, view_kwargs):
        request.browser.cache_allowed = bool(getattr(view_func, "cookie_cache_ok", False))
        return None
