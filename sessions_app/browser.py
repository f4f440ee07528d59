"""Browser sessions backed by DeviceSession rows: the Django session engine and the per-request state.

``SESSION_ENGINE = "sessions_app.browser"``. The session cookie carries a random key; the row keeps
only its hash (``browser_key_hash``) and the data Django puts in ``request.session``. A page login
creates its row with the same service as an API login (``sessions_app.services.session_create``), so
a browser and a phone show up in one sessions list and are revoked the same way.

There is no anonymous session: data written to ``request.session`` before sign-in is not kept
(messages use the cookie storage, CSRF its own cookie).

``BrowserState`` (``request.browser``, set by the middleware) resolves who the browser is signed in
as: from a fresh cookie-cache snapshot without a query where the view allows it
(``@cookie_cache_ok``), otherwise from the row. It also holds the other accounts signed in on this
browser (the accounts cookie) and what the response has to write back. Every change of who is
signed in here (sign-in, adding an account, a switch, sign-out) rotates the CSRF token, so a form
rendered before it cannot be sent after it (web/form_account.py).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import CreateError, SessionBase
from django.middleware.csrf import rotate_token
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import User
from accounts.serializers import user_data
from core import metrics
from core.tokens import hash_token
from orgs.models import Membership
from sessions_app import cookie_cache
from sessions_app.app_settings import app_settings
from sessions_app.models import DeviceSession
from sessions_app.policy import session_fresh_until, session_refusal
from sessions_app.selectors import session_by_browser_key_hash
from sessions_app.serializers import session_data
from sessions_app.services import (
    session_browser_key_issue,
    session_create,
    session_logout,
    session_use,
    sessions_cleanup,
)

KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{32,64}$")


def valid_key(value) -> bool:
    return isinstance(value, str) and bool(KEY_RE.match(value))


def cookie_cache_ok(view):
    """Mark a view that only needs the signed-in user: a fresh cookie cache answers without a query."""
    view.cookie_cache_ok = True
    return view


def session_row_load(raw_key: str, *, request=None) -> DeviceSession | None:
    """The live row of a browser key (with its user), after the idle check and activity touch."""
    if not valid_key(raw_key):
        return None
    read_at = time.time()
    row = session_by_browser_key_hash(hash_token(raw_key))
    if row is None:
        return None
    row.loaded_at = read_at  # a snapshot from this row is as old as the read (cookie_cache marks)
    if session_use(row, request=request) is not None:  # the one rule (sessions_app.policy), applied
        return None
    return row


class SessionStore(SessionBase):
    """Django's session API over a DeviceSession row (see the module docstring)."""

    def __init__(self, session_key=None):
        super().__init__(session_key)
        self.request = None
        self._row = None
        self._row_loaded = False
        self._row_loading = False

    # --- the row -------------------------------------------------------------------------------
    @property
    def device_session(self) -> DeviceSession | None:
        if not self._row_loaded and not self._row_loading:
            # Loaded only once it answered: a load that failed (the database is down) must not read as
            # "the session is gone", which would make the response sign the browser out. (A look from
            # inside the load, e.g. an audit row reading request.user, sees no row, as it always did.)
            self._row_loading = True
            try:
                row = session_row_load(self.session_key, request=self.request) if self.session_key else None
            finally:
                self._row_loading = False
            self._row, self._row_loaded = row, True
        return self._row

    def bind(self, row: DeviceSession, raw_key: str) -> None:
        """Attach a freshly signed-in row (its key hash already stored) to this request."""
        self._session_key = raw_key
        self._row, self._row_loaded = row, True
        self._session_cache = {}
        self.modified = True

    # --- SessionBase ---------------------------------------------------------------------------
    def _validate_session_key(self, key):
        return valid_key(key)

    def load(self):
        row = self.device_session
        if row is None:
            self._session_key = None
            return {}
        try:
            data = json.loads(row.browser_data or "{}")
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def exists(self, session_key):
        return valid_key(session_key) and DeviceSession.objects.filter(
            browser_key_hash=hash_token(session_key)).exists()

    def create(self):
        # Sessions are created by signing in (session_create), never for anonymous visitors.
        raise CreateError("browser sessions are created by signing in")

    def save(self, must_create=False):
        row = self.device_session
        if row is None and SESSION_KEY in self._get_session(no_load=True):
            row = self._row_from_django_login()
        if row is None or must_create:
            return  # anonymous data is not kept
        row.browser_data = json.dumps(self._get_session(no_load=True), separators=(",", ":"), default=str)
        DeviceSession.objects.filter(pk=row.pk, revoked_at__isnull=True).update(browser_data=row.browser_data)

    def _row_from_django_login(self):
        """``django.contrib.auth.login`` (the test client's ``force_login``, third-party code) put a
        user in an anonymous session: give it a real device session through the one service."""
        user = User.objects.filter(pk=self._get_session(no_load=True)[SESSION_KEY], is_active=True).first()
        if user is None:
            return None
        row = session_create(user=user, request=self.request, tokens=False).session
        data = self._session_cache
        self.bind(row, session_browser_key_issue(row))
        self._session_cache = data
        return row

    def delete(self, session_key=None):
        """Django's logout (``flush``) ends the row through the audited logout service."""
        row = self.device_session if session_key in (None, self.session_key) else session_row_load(session_key)
        if row is not None and row.revoked_at is None:
            session_logout(session=row, request=self.request)
        if self.request is not None and hasattr(self.request, "browser"):
            self.request.browser.signed_out()

    def cycle_key(self):
        row = self.device_session
        if row is None:
            return
        data = self._session_cache if hasattr(self, "_session_cache") else {}
        self.bind(row, session_browser_key_issue(row))
        self._session_cache = data
        if self.request is not None and hasattr(self.request, "browser"):
            self.request.browser.key_changed = True

    def get_expire_at_browser_close(self):
        row = self.device_session
        return row is None or not row.remember_me

    def get_expiry_age(self, **kwargs):
        row = self.device_session
        if row is None:
            return 0
        return max(0, int((row.expires_at - timezone.now()).total_seconds()))

    def get_expiry_date(self, **kwargs):
        row = self.device_session
        return row.expires_at if row is not None else timezone.now()

    @classmethod
    def clear_expired(cls):
        sessions_cleanup()


def _snapshot_user(payload: dict):
    data, private = payload["user"], payload["up"]
    user = User(
        id=uuid.UUID(data["id"]), email=data["email"], name=data["name"], role=data["role"],
        created_at=parse_datetime(data["createdAt"]),
        email_verified_at=parse_datetime(private["ev"]) if private.get("ev") else None,
        is_active=private["active"], is_staff=private["staff"], is_superuser=private["superuser"],
        password="!cookie-cache",  # never a usable password: writes go through the row's user
    )
    user._state.adding = False
    user._state.db = "default"
    user.from_cookie_cache = True
    return user


def snapshot_for(row: DeviceSession, raw_key: str) -> str:
    session = session_data(row, current=False)
    del session["current"]
    session["expiresAtTs"] = row.expires_at.timestamp()
    user = row.user
    private = {"ev": user.email_verified_at.isoformat() if user.email_verified_at else None,
               "active": user.is_active, "staff": user.is_staff, "superuser": user.is_superuser}
    read_at = getattr(row, "loaded_at", None)
    now = datetime.fromtimestamp(read_at, tz=UTC) if read_at is not None else timezone.now()
    org, not_after = _snapshot_org(row), session_fresh_until(row, now).timestamp()
    return cookie_cache.snapshot_encode(key_hash=hash_token(raw_key), session=session,
                                        user=user_data(user), user_private=private,
                                        org=org, not_after=not_after, now=getattr(row, "loaded_at", None))


def _snapshot_org(row: DeviceSession) -> dict | None:
    """The active organization as ``GET token`` puts it in the token (``{"id", "role"}``); None without one or
    when the membership has ended (the next token carries no organization). Its session policy bounds the
    snapshot's freshness through ``session_fresh_until``."""
    if row.active_organization_id is None:
        return None
    if hasattr(row, "active_org_role"):
        role = row.active_org_role
    else:
        role = Membership.objects.filter(user_id=row.user_id, organization_id=row.active_organization_id
                                         ).values_list("role", flat=True).first()
    if role is None:
        return None
    return {"id": str(row.active_organization_id), "role": role}


def session_payload(snapshot_session: dict) -> dict:
    """The API's Session from a snapshot (the current session by definition)."""
    session = {k: v for k, v in snapshot_session.items() if k != "expiresAtTs"}
    session["current"] = True
    return session


class BrowserState:
    """Who this browser is signed in as, and what the response must write back to its cookies."""

    def __init__(self, request):
        self.request = request
        cookies = request.COOKIES
        self.raw_key = cookies.get(app_settings.SESSION_COOKIE)
        self.had_key = self.raw_key is not None
        self._cache_cookie = cookies.get(app_settings.CACHE_COOKIE)
        self._snapshot = None
        self._snapshot_checked = False
        self.snapshot_used = False
        self.cache_allowed = False
        self.key_changed = False  # a new session key must be sent
        self.cleared = False  # signed out: delete the cookies (unless another account takes over)
        raw_accounts = cookies.get(app_settings.ACCOUNTS_COOKIE, "")
        self.other_keys = [k for k in raw_accounts.split(".") if valid_key(k)][:20] if raw_accounts else []
        self.accounts_changed = False
        self.had_accounts_cookie = bool(raw_accounts)

    # --- resolution ----------------------------------------------------------------------------
    def snapshot(self) -> dict | None:
        """The fresh, unrevoked cookie-cache payload for this session cookie, or None."""
        if not self._snapshot_checked:
            self._snapshot_checked = True
            if not (self.raw_key and valid_key(self.raw_key) and app_settings.COOKIE_CACHE_TTL.total_seconds() > 0):
                return None
            if not self._cache_cookie:
                metrics.cookie_cache(result="miss")
                return None
            payload = cookie_cache.snapshot_decode(self._cache_cookie, key_hash=hash_token(self.raw_key))
            if payload is None:
                metrics.cookie_cache(result="stale")
            elif cookie_cache.revoked_since(payload):
                metrics.cookie_cache(result="revoked")
            else:
                metrics.cookie_cache(result="hit")
                self._snapshot = payload
        return self._snapshot

    @property
    def row(self) -> DeviceSession | None:
        session = getattr(self.request, "session", None)
        return session.device_session if isinstance(session, SessionStore) and not self.cleared else None

    def user(self):
        """The signed-in user or None; from the cookie cache only where the view allows it."""
        if self.cleared:
            return None
        if self.cache_allowed and not self.key_changed:
            payload = self.snapshot()
            if payload is not None:
                self.snapshot_used = True
                return _snapshot_user(payload)
        row = self.row
        return row.user if row is not None else None

    # --- changes -------------------------------------------------------------------------------
    def signed_in(self, row: DeviceSession, raw_key: str, *, keep_previous: bool) -> None:
        """Make ``row`` the active session; the previous one stays signed in as another account when
        ``keep_previous``."""
        previous = self.raw_key if (keep_previous and valid_key(self.raw_key)) else None
        if previous and previous not in self.other_keys:
            self.other_keys.insert(0, previous)
            self.accounts_changed = True
        rotate_token(self.request)  # forms of other tabs carry the old token: they cannot act as this account
        store = SessionStore()
        store.request = self.request
        store.bind(row, raw_key)
        self.request.session = store
        self.raw_key = raw_key
        self.key_changed = True
        self.cleared = False
        self._snapshot, self._snapshot_checked = None, True
        self.request.user = row.user

    def switched_to(self, row: DeviceSession, raw_key: str) -> None:
        if raw_key in self.other_keys:
            self.other_keys.remove(raw_key)
        self.signed_in(row, raw_key, keep_previous=True)

    def forget_other(self, raw_key: str) -> None:
        if raw_key in self.other_keys:
            self.other_keys.remove(raw_key)
            self.accounts_changed = True

    def signed_out(self) -> None:
        rotate_token(self.request)
        self.cleared = True
        self.raw_key = None
        self._snapshot, self._snapshot_checked = None, True

    def other_rows(self) -> list[tuple[str, DeviceSession]]:
        """The other live accounts of this browser as (raw key, row); dead keys are dropped."""
        if not self.other_keys:
            return []
        by_hash = {hash_token(k): k for k in self.other_keys}
        now = timezone.now()
        rows = {r.browser_key_hash: r for r in DeviceSession.objects.alive(now).select_related(
            "user", "active_organization").filter(browser_key_hash__in=list(by_hash))}
        alive = [(key, rows[h]) for h, key in by_hash.items() if h in rows and session_refusal(rows[h], now) is None]
        if len(alive) != len(self.other_keys):
            self.other_keys = [key for key, _ in alive]
            self.accounts_changed = True
        return alive
