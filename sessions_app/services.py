"""Device sessions: create at login, rotate refresh tokens, revoke, slide expiry, clean up."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from django.db import transaction
from django.db.models import F, JSONField, OuterRef, Subquery
from django.db.models.functions import JSONObject
from django.utils import timezone

from audit.app_settings import app_settings as audit_settings
from audit.models import EventType
from audit.refusals import NO_REASON, RefusalScope, audited_refusals
from audit.services import audit_record
from core.cleanup import delete_in_batches, update_in_batches
from core import metrics
from core.prepared import PreparedInsert, PreparedUpdate, PreparedUpdateThenInsert
from core.crypto import DecryptionError, decrypt, derive_key, encrypt, key_encryption_root
from core.errors import ApiError, NotFound
from core.request_meta import client_ip, user_agent
from core.tokens import hash_token
from identity.services.tokens import access_token_issue
from orgs.models import Membership
from security.devices import Anomaly, refresh_anomaly
from security.lockout import known_devices_end
from sessions_app import cookie_cache, refresh_tokens
from sessions_app.app_settings import app_settings
from sessions_app.models import PASSWORD_AMR, DeviceSession, RevokeReason, SealedWith, SpentRefreshToken
from sessions_app.policy import ORGANIZATION_REASONS, Refusal, session_refusal
from sessions_app.selectors import session_by_id, session_by_refresh_hash, session_by_refresh_secret

REFRESH_TOKEN_PREFIX = refresh_tokens.PREFIX
GRACE_PURPOSE = "sessions.refresh-grace"
SWITCH_GRACE_PURPOSE = "sessions.switch-grace"


class RefreshError(ApiError):
    status_code = 401
    default_code = "invalid_refresh_token"
    default_detail = "The refresh token is not valid."


@dataclass
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session: DeviceSession

    @property
    def user(self):
        return self.session.user

    def as_secret_dict(self) -> dict:
        return {"accessToken": self.access_token, "refreshToken": self.refresh_token, "expiresIn": self.expires_in}


def session_of_live_refresh_token(raw_token: str, token_hash: str) -> DeviceSession | None:
    """The session whose live refresh token this is, with its user, organization and role there
    (sessions_app.selectors), whichever format the token has; None for a spent or unknown one."""
    session_id = refresh_tokens.session_id(raw_token)  # None: the first format, found by its hash
    if session_id is not None:
        return session_by_refresh_secret(session_id, token_hash)
    return session_by_refresh_hash(token_hash)


def live_refresh_hash(session: DeviceSession) -> str | None:
    """The hash of the session's live refresh token, whichever format it has."""
    return session.refresh_secret_hash or session.refresh_token_hash


def _lifetime(remember_me: bool):
    return app_settings.REMEMBER_ME_LIFETIME if remember_me else app_settings.LIFETIME


def _slid_expiry(session: DeviceSession, now: datetime) -> datetime | None:
    """The new expiry if activity now should extend it (at most once per UPDATE_AGE), else None."""
    lifetime = _lifetime(session.remember_me)
    last_extended = session.expires_at - lifetime
    if now - last_extended < app_settings.UPDATE_AGE:
        return None
    new_expiry = min(now + lifetime, session.absolute_expires_at)
    return new_expiry if new_expiry > session.expires_at else None


def _issue_access(session: DeviceSession, membership: Membership | None = None, *, refresh_token: str = "",
                  now: datetime | None = None):
    """An access token for ``session``; with the membership of its active organization it carries
    ``org`` and ``orgRole``. With the ``refresh_token`` issued beside it, its ``jti`` derives from that token
    and ``iat`` is ``now``: the same token for the same pair (the grace window's replay)."""
    org = {} if membership is None else {"org_id": membership.organization_id, "org_role": membership.role}
    pinned = {} if not refresh_token else {"jti": refresh_tokens.access_jti(refresh_token),
                                          "now": int(now.timestamp())}
    return access_token_issue(user=session.user, session_id=session.pk, amr=session.amr, **org, **pinned)


def session_access_token_issue(session: DeviceSession):
    """An access token for a live session without a refresh (the browser's ``GET token``)."""
    return _issue_access(session, _active_membership(session))


def session_create(*, user, request=None, remember_me: bool = False, device_id: str = "",
                   device_name: str = "", tokens: bool = True, amr=PASSWORD_AMR, fresh: bool = True,
                   device_live: bool = True) -> TokenPair:
    """A new device session with its first token pair, signed in by ``amr`` (RFC 8176). A login from a
    device id that already has a live session for this user replaces it, so each device shows up once.
    ``tokens=False``: a browser-only session (sessions_app.browser) without a refresh or access token.
    ``fresh=False``: no password was typed for this session (an OpenID Connect client's): it never counts
    as recently re-authenticated for sensitive actions. ``device_live=False``: the caller read, with the
    account, that ``device_id`` has no live session of this user (flows/login.py), so none is looked for
    (a login of the same device id that commits in between is not replaced: both stay listed).
    In the caller's transaction when there is one, without a savepoint of its own (an error rolls the
    caller back too: no caller goes on after one)."""
    with transaction.atomic(savepoint=False):
        now = timezone.now()
        if device_id and device_live:
            for old in DeviceSession.objects.alive(now).filter(user=user, device_id=device_id).select_for_update():
                session_revoke(session=old, reason=RevokeReason.DEVICE_REPLACED, request=request, actor=user)
        membership = last_active_membership(user)  # the organization used last is active again
        if membership is not None and Membership.organization.is_cached(membership):
            organization = {"active_organization": membership.organization}
        else:  # loaded with the user (no Organization row): its id is all the session keeps
            organization = {"active_organization_id": getattr(membership, "organization_id", None)}
        session = DeviceSession(
            user=user,
            device_id=device_id,
            device_name=device_name,
            ip_address=client_ip(request),
            user_agent=user_agent(request),
            remember_me=remember_me,
            created_at=now,
            last_activity_at=now,
            expires_at=min(now + _lifetime(remember_me), now + app_settings.ABSOLUTE_LIFETIME),
            absolute_expires_at=now + app_settings.ABSOLUTE_LIFETIME,
            reauthenticated_at=now if fresh else None,
            amr=list(amr),
            **organization,
        )
        raw_refresh = refresh_tokens.new(session.pk, session.refresh_count) if tokens else ""
        session.refresh_secret_hash = hash_token(raw_refresh) if raw_refresh else ""
        _SESSION_INSERT.execute(session)  # DeviceSession.objects.create, compiled once (no receiver listens)
        if not tokens:
            return TokenPair(access_token="", refresh_token="", expires_in=0, session=session)
        access = _issue_access(session, membership)
        return TokenPair(access_token=access.token, refresh_token=raw_refresh, expires_in=access.expires_in,
                         session=session)


def _grace_key(sealed_with: str, raw_token: str) -> bytes:
    """The key of a spent token's successor pair: derived from the spent token itself after a refresh (so
    nothing stored can read it), from the key-encryption key after a switch-organization, whose request
    does not carry the refresh token it spends (as signing keys are kept)."""
    if sealed_with == SealedWith.KEY_ENCRYPTION_KEY:
        return derive_key(key_encryption_root(), purpose=SWITCH_GRACE_PURPOSE)
    return derive_key(raw_token.encode(), purpose=GRACE_PURPOSE)


def _grace_seal(pair: TokenPair, token_hash: str, sealed_with: str, raw_token: str = "") -> str:
    """The successor pair of a spent token, encrypted for the grace window (bound to the spent token's
    hash); nothing when the grace window is off."""
    if app_settings.REFRESH_GRACE.total_seconds() <= 0:
        return ""
    return encrypt(_grace_key(sealed_with, raw_token), json.dumps(pair.as_secret_dict()).encode(),
                   aad=token_hash.encode())


def session_refresh(*, raw_token: str, request=None) -> TokenPair:
    """Exchange a refresh token for a new pair in the same session.

    The winner of a race spends the token with a conditional UPDATE (the live token's hash still
    equal to its hash), so at most one successor exists whatever the concurrency. Everyone else
    finds the token spent: inside the grace window they get the winner's pair (derived again from the
    token they hold); outside it the session is revoked as a reuse.

    Every refusal keeps what it wrote (a session revoked as idle, as an anomaly or as a reuse) and is
    audited in the same transaction (``scope.refuse``: audit/refusals.py), then raised.

    A routine refresh (the session usable, nothing to record but the rotation) writes nothing but the
    rotation, which is one statement: it runs outside a transaction (the lookup, then the rotating UPDATE;
    a tagged token needs no spent-token row: sessions_app.refresh_tokens), two round trips instead of five.
    Anything else, and a rotation lost to a concurrent request, takes the audited transaction below, which
    looks again.
    """
    token_hash = hash_token(raw_token)
    session = session_of_live_refresh_token(raw_token, token_hash)  # read committed, as in the transaction
    found = _obstacles(session, request, timezone.now()) if session is not None else None
    if found == _NONE and not audit_settings.RECORD_REFRESHES:  # routine: refreshes are not audit rows
        pair = _rotate(None, session, raw_token, token_hash, request)
        if pair is not None:
            return pair
        session = found = None  # spent by a concurrent request in the meantime: the spent-token path answers
    with audited_refusals(event=EventType.TOKEN_REFRESH_FAILED, request=request) as scope:
        if session is not None:
            pair = _rotate(scope, session, raw_token, token_hash, request, found=found)
            if pair is not None:
                return pair
        return _spent_token(scope, raw_token, token_hash, request)


_NONE = (None, None)


def _obstacles(session: DeviceSession, request, now: datetime) -> tuple[Refusal | None, Anomaly | None]:
    """What stands between ``session`` and a new token pair now: the session rule's refusal
    (sessions_app.policy) and the anomaly verdict (security.devices); ``_NONE`` when nothing. Both only
    read: ``_refuse_unless_usable`` applies them."""
    return session_refusal(session, now), refresh_anomaly(session=session, request=request)


def _refused(scope: RefusalScope, code: str, message: str, *, session=None, reason: str, **context) -> NoReturn:
    """Refuse the refresh as ``code`` (401): audited against the session's user, the session kept as is."""
    scope.refuse(RefreshError(message, code=code), reason=reason,
                 actor=session.user if session is not None else None, session=session, **context)


def _refuse_unless_usable(scope: RefusalScope, session: DeviceSession, request, now: datetime,
                          found: tuple | None = None) -> None:
    """Refuse unless ``session`` may get a token pair now. One list of checks (``_obstacles``; ``found``:
    what it already answered for this session) for a rotation, the routine one included, and for the
    grace path's replay of a pair (a replay hands out a live refresh token just the same): the session
    alive, its user active, not idle, within its organization's session policy, and used from where it
    was used before (the anomaly policy). Checks that end the session revoke it; each refusal is audited."""
    refusal, verdict = found if found is not None else _obstacles(session, request, now)
    if refusal is not None:
        session_refusal_apply(session, refusal, request=request)
        _refused(scope, refusal.code, refusal.message, session=session, reason=refusal.reason)

    if verdict and session_anomaly_apply(session, verdict, request=request):
        _refused(scope, "session_revoked", "This session was signed out because it was used from an unexpected "
                 "device or network. Sign in again.", session=session, reason="anomaly")


# A refresh spends its token with one conditional UPDATE (the winner of a race is whoever changes the row),
# compiled once (core/prepared.py). A tagged token (sessions_app.refresh_tokens) needs no other write: once it
# is not the live one it is recognised as spent by its tag, and its successor pair is recomputed from it.
_ROTATE = PreparedUpdate(DeviceSession, where=("pk", "refresh_secret_hash"),
                         set=("refresh_secret_hash", "refresh_rotated_at", "last_activity_at", "expires_at"),
                         fixed={"refresh_count": F("refresh_count") + 1})
# A token without a tag (the format of migration 0013, found by refresh_secret_hash): the same UPDATE and, only
# for the winner, the spent token's row, which is how it is recognised later.
_ROTATE_RECORDED = PreparedUpdateThenInsert(_ROTATE, PreparedInsert(SpentRefreshToken))
# The first refresh of a token of the first format (found by refresh_token_hash): the same, and the successor
# is of the current format (refresh_token_hash emptied, one last non-HOT update).
_ROTATE_EARLIER_FORMAT = PreparedUpdateThenInsert(
    PreparedUpdate(DeviceSession, where=("pk", "refresh_token_hash"),
                   set=("refresh_secret_hash", "refresh_rotated_at", "last_activity_at", "expires_at"),
                   fixed={"refresh_count": F("refresh_count") + 1, "refresh_token_hash": None}),
    PreparedInsert(SpentRefreshToken))
_SESSION_INSERT = PreparedInsert(DeviceSession)


def _pair_after(session: DeviceSession, spent_raw: str, membership: Membership | None, now: datetime,
                generation: int) -> TokenPair:
    """The pair a refresh of ``spent_raw`` at ``now`` hands out (its successor, of ``generation``, and the access
    token issued with it), both derived (sessions_app.refresh_tokens), so the grace window computes the same
    pair again."""
    new_raw = refresh_tokens.successor(session.pk, spent_raw, generation)
    access = _issue_access(session, membership, refresh_token=new_raw, now=now)
    return TokenPair(access_token=access.token, refresh_token=new_raw, expires_in=access.expires_in, session=session)


def _rotate(scope: RefusalScope | None, session: DeviceSession, raw_token: str, token_hash: str,
            request, found: tuple | None = None) -> TokenPair | None:
    """The new pair, or None when another request spent the token first (the spent-token path answers).
    Without ``scope``: the routine rotation, for which ``_obstacles`` found nothing, outside a transaction."""
    now = timezone.now()
    if scope is not None:
        _refuse_unless_usable(scope, session, request, now, found=found)
    membership = _active_membership(session)  # a membership that ended takes the organization with it
    pair = _pair_after(session, raw_token, membership, now, session.refresh_count + 1)  # the count after it
    new_hash = hash_token(pair.refresh_token)
    expires_at = _slid_expiry(session, now) or session.expires_at
    where, values = (session.pk, token_hash), (new_hash, now, now, expires_at)
    # The routine rotation (no scope: outside a transaction) need not wait for the disk: losing it in a crash
    # of the database server only signs its device out (docs/deploy.md "A refresh and the disk").
    asynchronous = scope is None and app_settings.REFRESH_ASYNC_COMMIT
    if session.refresh_token_hash is None and refresh_tokens.is_ours(raw_token):
        rotated = _ROTATE.execute(where, values, asynchronous_commit=asynchronous)
    else:  # a token without a tag: its spend is recorded
        spent = SpentRefreshToken(token_hash=token_hash, session=session, spent_at=now, successor_hash=new_hash,
                                  successor_encrypted=_grace_seal(pair, token_hash, SealedWith.SPENT_TOKEN, raw_token),
                                  successor_sealed_with=SealedWith.SPENT_TOKEN)
        rotate = _ROTATE_RECORDED if session.refresh_token_hash is None else _ROTATE_EARLIER_FORMAT
        rotated = rotate.execute(where, values, spent, asynchronous_commit=asynchronous)
    if not rotated:
        return None  # another request spent it first: the spent-token path answers
    session.refresh_secret_hash, session.refresh_rotated_at, session.last_activity_at = new_hash, now, now
    session.refresh_token_hash = None
    session.expires_at = expires_at
    session.refresh_count += 1
    if audit_settings.RECORD_REFRESHES:  # routine: counted on the session above (docs/audit.md)
        audit_record(event=EventType.TOKEN_REFRESHED, request=request, actor=session.user, session=session)
    elif not transaction.get_connection().in_atomic_block:  # committed already (what on_commit would find)
        metrics.refresh_result(outcome="success")  # the metric the audit row would have counted
    else:  # core.metrics.audit_counted: after the commit
        transaction.on_commit(lambda: metrics.refresh_result(outcome="success"), robust=True)
    return pair


def _spent_token(scope: RefusalScope, raw_token: str, token_hash: str, request) -> TokenPair:
    """A token that is not (or no longer) a session's live refresh token: unknown, the winner's pair
    replayed within the grace window, or a reuse (the session is revoked). A spent token is one with a
    SpentRefreshToken row (a switch of organization spent it, or it had no tag) or one of ours by its tag
    (sessions_app.refresh_tokens); any other is unknown and ends nothing."""
    spent = SpentRefreshToken.objects.select_related("session__user", "session__active_organization").filter(
        token_hash=token_hash).first()
    if spent is not None:
        session = spent.session
    elif refresh_tokens.is_ours(raw_token):
        session = session_by_id(refresh_tokens.session_id(raw_token))  # None: deleted by the cleanup
        if session is not None and refresh_tokens.generation(raw_token) >= session.refresh_count:
            # Ours but never live (its rotation lost in a crash of the database server: docs/deploy.md "A
            # refresh and the disk"): unknown, like a token of no session; the session goes on.
            _refused(scope, "invalid_refresh_token", "The refresh token is not valid.", session=session,
                     reason="unknown", never_live=True)
    else:
        session = None
    if session is None:
        _refused(scope, "invalid_refresh_token", "The refresh token is not valid.", reason="unknown")
    now = timezone.now()
    refusal = session_refusal(session, now)  # a spent token replays nothing for a session that is not usable
    if refusal is not None:
        session_refusal_apply(session, refusal, request=request)
        _refused(scope, refusal.code, refusal.message, session=session, reason=refusal.reason, spent=True)
    pair, spent_at = _grace_pair(session, spent, raw_token, token_hash, now)
    if pair is not None:
        _refuse_unless_usable(scope, session, request, now)  # the replayed pair is a live refresh token
        audit_record(event=EventType.TOKEN_REFRESHED, request=request, actor=session.user, session=session,
                     replayed_within_grace=True)
        return pair
    # When it was spent, where that is known (a row, or the rotation that made the live token); for a tagged
    # token also how far behind the session's chain it is (1: the live token's predecessor).
    behind = {} if spent is not None else {
        "generations_behind": session.refresh_count - refresh_tokens.generation(raw_token)}
    session_revoke(session=session, reason=RevokeReason.REFRESH_TOKEN_REUSED, request=request)
    scope.refuse(RefreshError("This refresh token was already used; the session has been signed out.",
                              code="refresh_token_reused"),
                 event=EventType.REFRESH_REUSE_DETECTED, reason=NO_REASON, actor=None, subject=session.user,
                 session=session, spent_at=spent_at.isoformat() if spent_at is not None else None, **behind)


def _grace_pair(session: DeviceSession, spent: SpentRefreshToken | None, raw_token: str, token_hash: str,
                now: datetime) -> tuple[TokenPair | None, datetime | None]:
    """The pair that replaced a spent token, if it is still the session's live pair and the token was spent
    within the grace window; and when the token was spent, where that is known (for the reuse's audit row).

    - A recorded spend (a switch of organization; a token without a tag): the successor pair sealed in its row.
    - A tagged token spent by a refresh: its successor is derived from it, so it is the one whose refresh
      made the live token if the live token is its successor; the pair is computed again, the same as then.
    - A tagged token whose successor a switch of organization spent in turn, within the window: the switch's
      pair, sealed in the switch's row, so every answer a racing client holds leads to the live token."""
    grace = app_settings.REFRESH_GRACE
    live = live_refresh_hash(session)
    if spent is not None:
        if _within_grace(spent.spent_at, now) and live == spent.successor_hash:
            return _unsealed(session, spent, raw_token, token_hash), spent.spent_at
        return None, spent.spent_at
    generation = refresh_tokens.generation(raw_token) + 1
    successor_hash = hash_token(refresh_tokens.successor(session.pk, raw_token, generation))
    if live == successor_hash:  # spent by the rotation that made the live token
        spent_at = session.refresh_rotated_at
        if _within_grace(spent_at, now):
            return _pair_after(session, raw_token, _active_membership(session), spent_at, generation), spent_at
        return None, spent_at
    if grace.total_seconds() <= 0:
        return None, None
    switched = SpentRefreshToken.objects.filter(token_hash=successor_hash, predecessor_spent_at__gte=now - grace,
                                                successor_hash=live).first()
    if switched is None:
        return None, None
    return _unsealed(session, switched, "", successor_hash), switched.predecessor_spent_at


def _within_grace(spent_at: datetime | None, now: datetime) -> bool:
    """Whether a token spent at ``spent_at`` is still in the grace window at ``now`` (never when it is off)."""
    grace = app_settings.REFRESH_GRACE
    return grace.total_seconds() > 0 and spent_at is not None and now - spent_at <= grace


def _unsealed(session: DeviceSession, spent: SpentRefreshToken, raw_token: str, token_hash: str) -> TokenPair | None:
    """The successor pair sealed in ``spent``'s row (bound to ``token_hash``, the hash of the token it
    replaced), or None when nothing is kept (the window was off, the cleanup erased it) or it does not open."""
    if not spent.successor_encrypted:
        return None
    try:
        secret = json.loads(decrypt(_grace_key(spent.successor_sealed_with, raw_token), spent.successor_encrypted,
                                    aad=token_hash.encode()))
    except DecryptionError:
        return None
    return TokenPair(access_token=secret["accessToken"], refresh_token=secret["refreshToken"],
                     expires_in=secret["expiresIn"], session=session)


@transaction.atomic
def session_revoke(*, session: DeviceSession, reason: str, request=None, actor=None, **context) -> bool:
    """Revoke one session (idempotent). Returns False when it was already revoked. ``context`` goes
    into the audit row."""
    now = timezone.now()
    changed = DeviceSession.objects.filter(pk=session.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_reason=reason
    )
    if changed:
        session.revoked_at, session.revoked_reason = now, reason
        audit_record(event=EventType.SESSION_REVOKED, request=request, actor=actor, subject=session.user,
                     session=session, reason=reason, **context)
        # Browser cookie caches of this session stop answering on their next request (after the commit).
        cookie_cache.revocation_mark_session(session.pk)
    return bool(changed)


@transaction.atomic
def sessions_revoke_all(*, user, reason: str, request=None, actor=None, keep=None) -> int:
    """Revoke every live session of ``user`` except ``keep``; one audit row per session."""
    sessions = DeviceSession.objects.alive().filter(user=user).select_for_update()
    if keep is not None:
        sessions = sessions.exclude(pk=keep.pk)
    count = 0
    for session in sessions:
        count += session_revoke(session=session, reason=reason, request=request, actor=actor)
    # Every cookie-cache snapshot of this user issued before the commit goes back to the database once
    # (the kept session simply gets a new snapshot). One pipeline with the sessions' marks above.
    cookie_cache.revocation_mark_user(user.pk)
    return count


def session_logout(*, session: DeviceSession, request=None) -> None:
    """Sign this device out: its session ends, and so does the lockout exemption (known device) it got
    when it signed in."""
    with transaction.atomic():
        session_revoke(session=session, reason=RevokeReason.LOGOUT, request=request, actor=session.user)
        known_devices_end(user=session.user, session=session, reason=RevokeReason.LOGOUT)
        audit_record(event=EventType.LOGOUT, request=request, actor=session.user, session=session)


def sessions_organization_leave(*, user_id, organization_id) -> int:
    """A membership ended (removed, left, deleted by staff): the member's sessions that had its
    organization active fall back to none (their next access token carries no ``org``). Their
    cookie-cache snapshots go to the database once (the membership receiver publishes the mark after the
    commit). Returns how many sessions changed."""
    return DeviceSession.objects.filter(user_id=user_id, active_organization_id=organization_id).update(
        active_organization=None)


def session_refusal_apply(session: DeviceSession, refusal: Refusal, *, request=None) -> None:
    """Write what a refusal of the one rule (sessions_app.policy) ends: an idle or organization-policy
    session is revoked (audited, with the refusal's context); the other refusals change nothing."""
    if refusal.revoke_as is not None and session is not None:
        session_revoke(session=session, reason=refusal.revoke_as, request=request, **refusal.context)


def session_use(session: DeviceSession | None, *, request=None, now: datetime | None = None) -> Refusal | None:
    """Use ``session`` for a request (bearer, cookie): the refusal of the one rule, applied, or None after
    recording the activity (``session_touch``)."""
    now = now or timezone.now()
    refusal = session_refusal(session, now)
    if refusal is not None:
        session_refusal_apply(session, refusal, request=request)
        return refusal
    session_touch(session, now=now)
    return None


@transaction.atomic
def session_browser_key_issue(session: DeviceSession) -> str:
    """A new browser session key for ``session`` (login, key cycling); only its hash is stored. The
    raw key goes into the session cookie and nowhere else."""
    raw = secrets.token_urlsafe(32)
    DeviceSession.objects.filter(pk=session.pk).update(browser_key_hash=hash_token(raw))
    session.browser_key_hash = hash_token(raw)
    return raw


def session_touch(session: DeviceSession, *, now: datetime | None = None) -> None:
    """Record activity from an authenticated request: at most once per ACTIVITY_RESOLUTION, and
    sliding the expiry at most once per UPDATE_AGE. Costs no query most of the time."""
    now = now or timezone.now()
    if now - session.last_activity_at < app_settings.ACTIVITY_RESOLUTION:
        return
    changes = {"last_activity_at": now}
    new_expiry = _slid_expiry(session, now)
    if new_expiry is not None:
        changes["expires_at"] = new_expiry
    DeviceSession.objects.filter(pk=session.pk, revoked_at__isnull=True).update(**changes)
    for name, value in changes.items():
        setattr(session, name, value)


def session_mark_reauthenticated(session: DeviceSession, *, now: datetime | None = None) -> None:
    now = now or timezone.now()
    DeviceSession.objects.filter(pk=session.pk).update(reauthenticated_at=now)
    session.reauthenticated_at = now


def sessions_cleanup(*, now: datetime | None = None) -> int:
    """Delete sessions that expired or were revoked more than REVOKED_RETENTION ago (their spent
    refresh tokens go with them), in batches so no statement holds locks for long; erase the grace pairs
    of switch-organization once their window has passed."""
    now = now or timezone.now()
    # Successor pairs sealed under the key-encryption key (switch-organization) serve the grace window only.
    batch = app_settings.CLEANUP_BATCH_SIZE
    update_in_batches(SpentRefreshToken.objects.filter(successor_sealed_with=SealedWith.KEY_ENCRYPTION_KEY,
                                                       spent_at__lt=now - app_settings.REFRESH_GRACE).exclude(
        successor_encrypted=""), batch_size=batch, successor_encrypted="")
    cutoff = now - app_settings.REVOKED_RETENTION
    # Batches of primary keys, each in a short transaction of its own (core/cleanup.py); a session may
    # have thousands of spent refresh tokens (one per rotation), so a batch's go first, in batches too.
    spent = [(SpentRefreshToken.objects.all(), "session")]
    return (delete_in_batches(DeviceSession.objects.filter(expires_at__lt=cutoff), batch_size=batch, children=spent)
            + delete_in_batches(DeviceSession.objects.filter(revoked_at__lt=cutoff), batch_size=batch,
                                children=spent))


# --- the active organization (orgs) -------------------------------------------------------------------

def last_active_membership(user):
    """The membership the user switched to most recently (the default at the next login), if any.
    ``user`` may be ``OuterRef("pk")``: then the same rule as an annotation of a user lookup (the
    password login loads the account with it as ``last_active_membership``: flows/login.py, issue 15),
    and a user loaded with it is answered here without a statement (a Membership without its
    Organization row)."""
    memberships = Membership.objects.filter(user=user, last_active_at__isnull=False).order_by("-last_active_at")
    if isinstance(user, OuterRef):
        row = JSONObject(pk="pk", organization_id="organization_id", role="role")
        return Subquery(memberships.values(row=row).values("row")[:1], output_field=JSONField())
    if hasattr(user, "last_active_membership"):
        row = user.last_active_membership
        if not row:
            return None
        return Membership(pk=row["pk"], user=user, organization_id=uuid.UUID(str(row["organization_id"])),
                          role=row["role"])
    return memberships.select_related("organization").first()


def _active_membership(session: DeviceSession) -> Membership | None:
    """The membership behind the session's active organization. If it has ended, the session drops
    the organization here, so the token being issued carries no ``org``. A session loaded with
    ``active_org_role`` (sessions_app.selectors: the refresh and browser-key look-ups) is answered without
    a statement: a Membership with the user, organization and role of that row, which is all a token
    reads."""
    if session.active_organization_id is None:
        return None
    if hasattr(session, "active_org_role"):
        role = session.active_org_role
        membership = None if role is None else Membership(user_id=session.user_id,
                                                          organization_id=session.active_organization_id, role=role)
    else:
        membership = Membership.objects.filter(user_id=session.user_id,
                                               organization_id=session.active_organization_id).first()
    if membership is None:
        DeviceSession.objects.filter(pk=session.pk).update(active_organization=None)
        session.active_organization = None
    return membership


class OrganizationPolicyRefused(ApiError):
    status_code = 403
    default_code = "organization_session_policy"
    default_detail = ("This organization allows only sessions that signed in more recently. "
                      "Sign in again, then switch to it.")


@transaction.atomic
def session_switch_organization(*, session: DeviceSession | None, organization_id, refresh_token: bool = True,
                                request=None) -> TokenPair:
    """Make an organization the caller is a member of active on ``session`` (None: leave it). The
    refresh token rotates (the old one counts as spent) and the new access token carries ``org`` and
    ``orgRole``; the choice survives refreshes and is the default at the next login. For a browser
    (``refresh_token=False``: the request came with the session cookie) the refresh token is left
    alone and none is returned (``""``): scripts never hold one."""
    if session is None:
        raise ApiError("Switching organizations needs a device session (Bearer token or session cookie).",
                       code="not_authenticated", status_code=401)
    session = DeviceSession.objects.select_for_update(of=("self", "user")).select_related(
        "user", "active_organization").get(pk=session.pk)
    now = timezone.now()  # after the lock: a refresh it waited for rotated before this switch, in time too
    refusal = session_refusal(session, now)
    if refusal is not None:
        raise ApiError(refusal.message, code=refusal.code, status_code=401)
    previous = session.active_organization_id
    membership = None
    if organization_id is not None:
        membership = Membership.objects.select_related("organization").filter(
            user_id=session.user_id, organization_id=organization_id).first()
        if membership is None:
            raise NotFound("No such organization.")
    session.active_organization = getattr(membership, "organization", None)
    session.last_activity_at = now
    refusal = session_refusal(session, now)  # the target organization's policy, with activity now
    if refusal is not None and refusal.reason in ORGANIZATION_REASONS:
        raise OrganizationPolicyRefused()
    if membership is not None:
        Membership.objects.filter(pk=membership.pk).update(last_active_at=now)
        membership.last_active_at = now
    changes = {"active_organization": session.active_organization, "last_activity_at": now}
    old_hash, new_raw, old_rotated_at = live_refresh_hash(session), "", session.refresh_rotated_at
    if old_hash and refresh_token:
        new_raw = refresh_tokens.new(session.pk, session.refresh_count)  # a switch is not a refresh: same count
        changes.update(refresh_secret_hash=hash_token(new_raw), refresh_token_hash=None, refresh_rotated_at=now)
    DeviceSession.objects.filter(pk=session.pk).update(**changes)
    for name, value in changes.items():
        setattr(session, name, value)
    access = _issue_access(session, membership)
    if new_raw:
        # The previous refresh token is spent, as by a refresh: within the grace window it gets this very
        # pair (a refresh racing the switch, a lost response), afterwards it is reuse.
        pair = TokenPair(access_token=access.token, refresh_token=new_raw, expires_in=access.expires_in,
                         session=session)
        new_hash = changes["refresh_secret_hash"]
        # A refresh that won the race just before this switch spent an older token for the one spent here;
        # that older token, presented again within its window (the refresh's answer was lost), gets this
        # pair too rather than a pair that is dead now. A tagged one is recognised by its successor, the
        # token spent here (sessions_app.services._grace_pair), as long as the rotation that made it is
        # within the window (predecessor_spent_at); a recorded one has its row pointed at this pair below.
        grace = app_settings.REFRESH_GRACE
        in_window = _within_grace(old_rotated_at, now)
        SpentRefreshToken.objects.create(
            token_hash=old_hash, session=session, spent_at=now, successor_hash=new_hash,
            successor_encrypted=_grace_seal(pair, old_hash, SealedWith.KEY_ENCRYPTION_KEY),
            successor_sealed_with=SealedWith.KEY_ENCRYPTION_KEY,
            predecessor_spent_at=old_rotated_at if in_window else None)
        if grace.total_seconds() > 0:
            for earlier in SpentRefreshToken.objects.filter(session=session, successor_hash=old_hash,
                                                            spent_at__gte=now - grace):
                SpentRefreshToken.objects.filter(pk=earlier.pk).update(
                    successor_hash=new_hash, successor_sealed_with=SealedWith.KEY_ENCRYPTION_KEY,
                    successor_encrypted=_grace_seal(pair, earlier.token_hash, SealedWith.KEY_ENCRYPTION_KEY))
    cookie_cache.snapshot_invalidate_user(session.user_id)  # after the commit: GET token's `org` follows
    audit_record(event=EventType.ORGANIZATION_SWITCHED, request=request, actor=session.user, session=session,
                 organization=organization_id, previous_organization=previous)
    return TokenPair(access_token=access.token, refresh_token=new_raw, expires_in=access.expires_in,
                     session=session)


def session_anomaly_apply(session: DeviceSession, anomaly, *, request) -> bool:
    """Apply the verdict of security.devices.refresh_anomaly (inside the refresh transaction, before
    rotating): revoke the session (ANOMALY_ACTION=revoke) or remember the new address and agent, so one
    move is one event and the sessions list shows where the device is now; audited as
    ``session.anomaly``. Returns True when the session was revoked."""
    # The session row first, the audit row (and its chain lock) after: the lock order of every flow.
    if anomaly.revoke:
        session_revoke(session=session, reason=RevokeReason.SUSPICIOUS_REFRESH, request=request)
    else:
        DeviceSession.objects.filter(pk=session.pk).update(ip_address=anomaly.ip_address,
                                                           user_agent=anomaly.user_agent)
    audit_record(event=EventType.SESSION_ANOMALY, request=request, actor=None, subject=session.user, session=session,
                 success=False, changes=list(anomaly.changes), old_agent_family=anomaly.old_agent_family,
                 new_agent_family=anomaly.new_agent_family, old_network=anomaly.old_network,
                 new_network=anomaly.new_network, action=anomaly.action)
    session.ip_address, session.user_agent = anomaly.ip_address, anomaly.user_agent
    return anomaly.revoke
