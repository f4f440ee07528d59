import uuid
from datetime import UTC, datetime

from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from core.prepared import PreparedQuery
from orgs.models import Membership
from sessions_app.models import DeviceSession, alive_q


def sessions_active_for(user, *, now=None):
    return DeviceSession.objects.alive(now or timezone.now()).filter(user=user).order_by("-last_activity_at")


_ACTIVE_FOR = PreparedQuery(
    lambda user_id, now: DeviceSession.objects.alive(now).filter(user_id=user_id).defer("browser_data").order_by(
        "-last_activity_at"),
    params={"user_id": ("user", uuid.UUID(int=1)), "now": ("expires_at", datetime(1901, 1, 1, tzinfo=UTC))})


def sessions_active_list(user) -> list[DeviceSession]:
    """``sessions_active_for(user)`` as a list, in one prepared statement (the sessions list's hot path)."""
    return _ACTIVE_FOR.all(user_id=user.pk, now=timezone.now())


def session_of_user(user, session_id):
    """A live session of ``user`` or None (another user's session is simply not found)."""
    return sessions_active_for(user).filter(pk=session_id).first()


# --- the row behind a credential: one indexed statement, compiled once (core/prepared.py) -------------
# Each loads the session with its user and active organization (what sessions_app.policy reads), so the
# one rule runs without another query. The browser's stored session data is left out where no one reads it.

def _with_user_and_organization():
    return DeviceSession.objects.select_related("user", "active_organization")


def _active_role_subquery():
    """The caller's role in the session's active organization, in the row's own query (None when the
    membership has ended), for the cookie-cache snapshot that ``GET token`` signs from and the token a
    refresh signs (sessions_app.services._active_membership): no statement of its own for either."""
    return Subquery(Membership.objects.filter(user_id=OuterRef("user_id"),
                                              organization_id=OuterRef("active_organization_id")).order_by().values("role")[:1])


_BY_ID = PreparedQuery(lambda sid: _with_user_and_organization().defer("browser_data").filter(pk=sid),
                       field="id", sentinel=uuid.UUID(int=0))
_BY_REFRESH_HASH = PreparedQuery(
    lambda token_hash: _with_user_and_organization().defer("browser_data").annotate(
        active_org_role=_active_role_subquery()).filter(refresh_token_hash=token_hash),
    field="refresh_token_hash", sentinel="prepared:refresh_token_hash")
_BY_REFRESH_SECRET = PreparedQuery(
    lambda sid, token_hash: _with_user_and_organization().defer("browser_data").annotate(
        active_org_role=_active_role_subquery()).filter(pk=sid, refresh_secret_hash=token_hash),
    params={"sid": ("id", uuid.UUID(int=3)), "token_hash": ("refresh_secret_hash", "prepared:refresh_secret_hash")})
_BY_BROWSER_KEY_HASH = PreparedQuery(
    lambda key_hash: _with_user_and_organization().annotate(active_org_role=_active_role_subquery()).filter(
        browser_key_hash=key_hash),
    field="browser_key_hash", sentinel="prepared:browser_key_hash")


def session_for_claims(claims: dict) -> DeviceSession | None:
    """The row behind a verified access token's ``sid`` (with its user and active organization, for
    sessions_app.policy), or None when there is none or it belongs to another user than ``sub``."""
    try:
        sid = uuid.UUID(claims.get("sid"))
    except (ValueError, TypeError, AttributeError):
        return None
    session = _BY_ID.first(sid)
    if session is None or str(session.user_id) != claims.get("sub"):
        return None
    return session


_WITH_LIVE_SESSIONS = PreparedQuery(
    lambda user_id, sid, now: _with_user_and_organization().defer("browser_data").filter(user_id=user_id).filter(
        Q(pk=sid) | alive_q(now)).order_by("-last_activity_at"),
    params={"user_id": ("user", uuid.UUID(int=1)), "sid": ("id", uuid.UUID(int=2)),
            "now": ("expires_at", datetime(1901, 1, 1, tzinfo=UTC))})


def session_and_live_sessions_for_claims(claims: dict, now) -> tuple[DeviceSession | None, list[DeviceSession]]:
    """``session_for_claims(claims)`` and the user's live sessions at ``now`` (``sessions_active_list``),
    in one statement: the rows of ``sub`` that are the token's ``sid`` (in whatever state, for
    sessions_app.policy to judge) or alive, newest activity first. When the caller's session passes the
    rule it is alive, and then the rows are exactly the live sessions; when it does not, the list is not
    to be shown. (None, []) for claims that name no session of theirs."""
    try:
        sid, user_id = uuid.UUID(claims.get("sid")), uuid.UUID(claims.get("sub"))
    except (ValueError, TypeError, AttributeError):
        return None, []
    rows = _WITH_LIVE_SESSIONS.all(user_id=user_id, sid=sid, now=now)
    return next((row for row in rows if row.pk == sid), None), rows


def session_by_refresh_hash(token_hash: str) -> DeviceSession | None:
    """The session whose live refresh token (of the format that named no session) has this hash (with its
    user, active organization, and ``active_org_role``: the caller's role there, None when the membership
    has ended)."""
    return _BY_REFRESH_HASH.first(token_hash)


def session_by_refresh_secret(session_id: uuid.UUID, token_hash: str) -> DeviceSession | None:
    """The session ``session_id`` if this is the hash of its live refresh token (a token that names its
    session: sessions_app.services), loaded as ``session_by_refresh_hash`` loads it, by primary key."""
    return _BY_REFRESH_SECRET.first(sid=session_id, token_hash=token_hash)


def session_by_id(session_id: uuid.UUID) -> DeviceSession | None:
    """The session ``session_id`` with its user and active organization (a spent refresh token's session:
    sessions_app.services), or None."""
    return _BY_ID.first(session_id)


def session_by_browser_key_hash(key_hash: str) -> DeviceSession | None:
    """The session of a browser key's hash (with its user, active organization, and ``active_org_role``:
    the caller's role there, None when the membership has ended)."""
    return _BY_BROWSER_KEY_HASH.first(key_hash)
