"""The browser glue: page sign-in, sign-out and account switching on top of the account and session
services (the same ones the API calls: same policy, same answers, same audit events)."""

from __future__ import annotations

import uuid

from django.core import signing
from django.db import transaction

from accounts.models import User
from audit.models import EventType
from audit.services import audit_record
from core.email import normalize_email
from core.errors import ApiError
from core.request_meta import device_label, user_agent
from flows.login import SecondFactorRequired, SignedIn, passkey_login, second_factor_verify, user_login
from mfa.app_settings import app_settings as mfa_settings
from mfa.models import Channel
from security.app_settings import app_settings as security_settings
from security.lockout import KNOWN_DEVICE_SALT, known_device_token_issue, known_device_valid
from sessions_app.app_settings import app_settings
from sessions_app.models import RevokeReason
from sessions_app.services import session_browser_key_issue, session_logout, session_revoke
from web.app_settings import app_settings as web_settings

DEVICE_TOKEN_SEPARATOR = "~"  # never in a signed value (URL-safe base64, ":" and ".")


class TooManyAccounts(ApiError):
    status_code = 400
    default_code = "too_many_accounts"


def device_tokens_read(request) -> list[str]:
    """The known-device tokens this browser keeps (one per account that signed in here)."""
    raw = request.COOKIES.get(web_settings.DEVICE_COOKIE, "")
    return [t for t in raw.split(DEVICE_TOKEN_SEPARATOR) if t][:web_settings.DEVICE_TOKENS_KEPT]


def _device_token_user(token: str) -> str | None:
    try:
        data = signing.loads(token, salt=KNOWN_DEVICE_SALT,
                             max_age=security_settings.KNOWN_DEVICE_MAX_AGE.total_seconds())
    except signing.BadSignature:
        return None
    return str(data.get("u")) if isinstance(data, dict) else None


def device_token_for(tokens: list[str], user_id) -> str:
    return next((t for t in tokens if _device_token_user(t) == str(user_id)), "")


def device_tokens_add(tokens: list[str], token: str) -> str:
    """The cookie value with ``token`` added: the other accounts' valid tokens kept, the newest last."""
    owner = _device_token_user(token)
    kept = [t for t in tokens if _device_token_user(t) not in (None, owner)]
    kept.append(token)
    return DEVICE_TOKEN_SEPARATOR.join(kept[-web_settings.DEVICE_TOKENS_KEPT:])


def device_tokens_merge(request, row) -> str:
    """The cookie value after ``row``'s user signed in here: a new token for them, bound to this browser
    and this session, replacing the one the login sent (security/lockout.py issues it, as the API's login
    does)."""
    tokens = device_tokens_read(request)
    token = known_device_token_issue(user=row.user, session=row, request=request,
                                     replaces=device_token_for(tokens, row.user_id))
    return device_tokens_add(tokens, token)


def browser_proves_owner(request, address: str) -> bool:
    """Page owner proof (forgot-password): this browser has a signed-in session of the account with
    that address, or keeps a known-device token of it (the cookie the login page sets)."""
    rows = [request.browser.row, *(row for _, row in request.browser.other_rows())]
    if any(row is not None and row.user.email == address for row in rows):
        return True
    return any(known_device_valid(token=token, email=address, request=request)
               for token in device_tokens_read(request))


def device_cookie_set(response, value: str) -> None:
    """The known-device tokens (security/lockout.py): long-lived, HttpOnly, sent back with page logins."""
    response.set_cookie(web_settings.DEVICE_COOKIE, value,
                        max_age=int(security_settings.KNOWN_DEVICE_MAX_AGE.total_seconds()),
                        secure=app_settings.COOKIE_SECURE, httponly=True, samesite="Lax", path="/")


def browser_login(request, *, email: str, password: str, remember_me: bool):
    """Sign in on this browser: the row of its new session, or ``SecondFactorRequired`` (no session yet:
    the page asks for the code, ``browser_second_factor``). An account already signed in here stays
    signed in as another account (at most MAX_BROWSER_ACCOUNTS); signing in again as the same user
    replaces its session. The browser's known-device token for that account (cookie, see
    device_tokens_read) goes with the password, so strangers locking the account on this address do not
    lock this browser out; its trusted-device token (two-factor) goes too."""
    _accounts_room_check(request)
    user_id = User.objects.filter(email=normalize_email(email)).values_list("pk", flat=True).first()
    device_token = device_token_for(device_tokens_read(request), user_id) if user_id else ""
    result = user_login(email=email, password=password, remember_me=remember_me, device_token=device_token,
                        trusted_device_token=trusted_token_for(request, user_id) if user_id else "",
                        device_name=device_label(user_agent(request)), channel=Channel.PAGE, request=request)
    if isinstance(result, SecondFactorRequired):
        return result
    return browser_adopt(request, result.session)


def browser_passkey_login(request, *, ceremony_id, credential):
    """Sign in on this browser with a passkey (no password, no second step): the row of its new session,
    adopted as ``browser_login`` does."""
    _accounts_room_check(request)
    pair = passkey_login(ceremony_id=ceremony_id, credential=credential, device_name=device_label(user_agent(request)),
                         channel=Channel.PAGE, request=request)
    return browser_adopt(request, pair.session)


def browser_second_factor(request, *, token: str, code: str = "", recovery_code: str = "", ceremony_id=None,
                          credential=None, trust: bool = False) -> SignedIn:
    """The second step of a page sign-in (the pending cookie's challenge): the session is adopted by
    this browser as ``browser_login`` would have."""
    _accounts_room_check(request)
    done = second_factor_verify(token=token, code=code, recovery_code=recovery_code, ceremony_id=ceremony_id,
                                credential=credential, trust_device=trust, channel=Channel.PAGE, request=request)
    browser_adopt(request, done.pair.session)
    return done


def _accounts_room_check(request) -> None:
    state = request.browser
    limit = app_settings.MAX_BROWSER_ACCOUNTS
    if state.row is not None and len(state.other_rows()) + 1 >= limit:
        raise TooManyAccounts(f"You are signed in to {limit} accounts on this browser. Sign one out first.")


def browser_adopt(request, row):
    """This browser holds ``row`` (a session just opened) as its active account; the one active before
    stays signed in as another account, unless it is the same user (then it is replaced)."""
    state = request.browser
    current = state.row
    raw_key = session_browser_key_issue(row)
    keep_previous = current is not None
    if current is not None and current.user_id == row.user_id:
        session_revoke(session=current, reason=RevokeReason.DEVICE_REPLACED, request=request, actor=row.user)
        keep_previous = False
    for key, other in state.other_rows():
        if other.user_id == row.user_id:  # the same user signed in again: one row per account
            session_revoke(session=other, reason=RevokeReason.DEVICE_REPLACED, request=request, actor=row.user)
            state.forget_other(key)
    state.signed_in(row, raw_key, keep_previous=keep_previous)
    return row


# --- two-factor: the trusted-device cookie (one "<user id>.<token>" per account) and the pending sign-in ---

def _trusted_entries(request) -> list[tuple[str, str]]:
    raw = request.COOKIES.get(web_settings.TRUSTED_COOKIE, "")
    entries = []
    for item in raw.split(DEVICE_TOKEN_SEPARATOR)[:web_settings.DEVICE_TOKENS_KEPT]:
        user_id, _, token = item.partition(".")
        if user_id and token:
            entries.append((user_id, token))
    return entries


def trusted_token_for(request, user_id) -> str:
    return next((token for uid, token in _trusted_entries(request) if uid == str(user_id)), "")


def trusted_cookie_set(response, request, *, user_id, token: str) -> None:
    """Keep ``token`` for ``user_id`` in the trusted-device cookie (the other accounts' entries stay)."""
    kept = [(uid, t) for uid, t in _trusted_entries(request) if uid != str(user_id)]
    kept.append((str(user_id), token))
    value = DEVICE_TOKEN_SEPARATOR.join(f"{uid}.{t}" for uid, t in kept[-web_settings.DEVICE_TOKENS_KEPT:])
    response.set_cookie(web_settings.TRUSTED_COOKIE, value,
                        max_age=int(mfa_settings.TRUST_MAX_AGE.total_seconds()),
                        secure=app_settings.COOKIE_SECURE, httponly=True, samesite="Lax", path="/login")


def pending_cookie_set(response, token: str) -> None:
    response.set_cookie(web_settings.PENDING_COOKIE, token, max_age=int(mfa_settings.CHALLENGE_TTL.total_seconds()),
                        secure=app_settings.COOKIE_SECURE, httponly=True, samesite="Lax", path="/login")


def pending_cookie_read(request) -> str:
    return request.COOKIES.get(web_settings.PENDING_COOKIE, "")


def pending_cookie_clear(response) -> None:
    response.delete_cookie(web_settings.PENDING_COOKIE, path="/login", samesite="Lax")


@transaction.atomic
def _audit_switch(request, *, from_row, to_row, reason: str) -> None:
    audit_record(event=EventType.ACCOUNT_SWITCHED, request=request, actor=to_row.user, session=to_row,
                 from_user=str(from_row.user_id) if from_row else None,
                 from_session=str(from_row.pk) if from_row else None, reason=reason)


def browser_switch(request, *, session_id) -> bool:
    """Make another account signed in on this browser the active one (no password: it is signed in)."""
    state = request.browser
    for key, row in state.other_rows():
        if str(row.pk) == str(session_id):
            _audit_switch(request, from_row=state.row, to_row=row, reason="switch")
            state.switched_to(row, key)
            return True
    return False


def browser_logout(request) -> None:
    """Sign the active account out; the next account signed in here (if any) becomes active."""
    state = request.browser
    row = state.row
    if row is not None:
        session_logout(session=row, request=request)
    state.signed_out()
    others = state.other_rows()
    if others:
        key, nxt = others[0]
        _audit_switch(request, from_row=row, to_row=nxt, reason="signed_out")
        state.switched_to(nxt, key)


def browser_forget_current(request) -> None:
    """The active account is gone (deleted): forget it here; the next account signed in here (if any)
    becomes active, as after a sign-out."""
    state = request.browser
    state.signed_out()
    others = state.other_rows()
    if others:
        key, nxt = others[0]
        _audit_switch(request, from_row=None, to_row=nxt, reason="signed_out")
        state.switched_to(nxt, key)


def browser_logout_other(request, *, session_id) -> bool:
    """Sign out one of the other accounts of this browser."""
    state = request.browser
    for key, row in state.other_rows():
        if str(row.pk) == str(session_id):
            session_logout(session=row, request=request)
            state.forget_other(key)
            return True
    return False


@transaction.atomic
def form_refusal_record(request, *, event: EventType, reason: str, sent: str | None = None,
                        current: str | None = None, **context) -> None:
    """Audit a page form refused before its view ran (web/form_account.py): by whom (the account
    signed in now, if any), which account the form was rendered for (only when it is one of this
    browser's accounts: a posted id is not trusted to name anyone), and where it was sent."""
    state = getattr(request, "browser", None)
    row = state.row if state is not None else None
    subject = None
    if sent and state is not None:
        subject = next((other.user for _, other in state.other_rows() if str(other.user_id) == sent), None)
    audit_record(event=event, request=request, actor=row.user if row is not None else None,
                 subject=subject or (row.user if row is not None else None), session=row, success=False,
                 reason=reason, path=request.path[:200], form_account=_uuid_or_none(sent),
                 current_account=current or None, **context)


def _uuid_or_none(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return "not an account id"
