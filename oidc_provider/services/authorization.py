"""The authorization endpoint's writes: an authorization code for a signed-in browser session, and the
consents of third-party clients (given, remembered per client and scopes, withdrawn)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from audit.models import EventType
from audit.services import audit_record
from core.cleanup import delete_in_batches
from core.tokens import hash_token
from oidc_provider.app_settings import app_settings
from oidc_provider.models import AuthorizationCode, Consent, OidcClient, OidcGrant
from sessions_app.models import DeviceSession, RevokeReason
from sessions_app.services import session_revoke

CODE_PREFIX = "mcoc_"
# A code is kept this long after it expired, so a late replay still finds it and revokes what it issued.
CODE_RETENTION = timedelta(days=1)

SCOPE_WORDS = {
    "openid": "Know who you are (your account id)",
    "profile": "See your name",
    "email": "See your email address and whether it is confirmed",
    "offline_access": "Stay signed in to it when you are not using it (until you revoke it here)",
}


@transaction.atomic
def code_issue(*, client: OidcClient, user, sso_session: DeviceSession, redirect_uri: str, scope: str,
               nonce: str = "", code_challenge: str = "", code_challenge_method: str = "", request=None,
               raw_code: str | None = None) -> str:
    """A single-use code (only its hash is stored) for ``user`` signed in with ``sso_session``; it lives
    CODE_TTL. ``auth_time`` and ``amr`` are the session's: its last password entry, how it signed in."""
    now = timezone.now()
    raw = raw_code or CODE_PREFIX + secrets.token_urlsafe(32)
    AuthorizationCode.objects.create(
        code_hash=hash_token(raw), client=client, user=user, browser_session=sso_session, redirect_uri=redirect_uri,
        scope=scope, nonce=nonce or "", code_challenge=code_challenge or "",
        code_challenge_method=code_challenge_method or "",
        auth_time=sso_session.reauthenticated_at or sso_session.created_at, amr=list(sso_session.amr or []),
        created_at=now, expires_at=now + app_settings.CODE_TTL,
    )
    audit_record(event=EventType.OIDC_AUTHORIZED, request=request, actor=user, session=sso_session,
                 client_id=client.client_id, scope=scope)
    return raw


def consent_needed(*, client: OidcClient, user, scopes) -> bool:
    """Third-party clients need the user's consent for every scope they ask for; first-party ones never."""
    if client.is_first_party:
        return False
    consent = Consent.objects.filter(user=user, client=client).first()
    return consent is None or not consent.covers(scopes)


@transaction.atomic
def consent_grant(*, client: OidcClient, user, scopes, request=None) -> Consent:
    """Remember that ``user`` allowed ``client`` these scopes (added to what was allowed before)."""
    consent = Consent.objects.select_for_update().filter(user=user, client=client).first()
    if consent is None:
        consent = Consent.objects.create(user=user, client=client, scopes=sorted(set(scopes)))
    else:
        consent.scopes = sorted(set(consent.scopes) | set(scopes))
        consent.granted_at = timezone.now()
        consent.save(update_fields=["scopes", "granted_at"])
    audit_record(event=EventType.OIDC_CONSENT_GRANTED, request=request, actor=user, client_id=client.client_id,
                 scope=" ".join(sorted(set(scopes))))
    return consent


def consent_deny(*, client: OidcClient, user, scopes, request=None) -> None:
    audit_record(event=EventType.OIDC_CONSENT_DENIED, request=request, actor=user, success=False,
                 client_id=client.client_id, scope=" ".join(scopes))


@transaction.atomic
def app_access_withdraw(*, client: OidcClient, user, request=None) -> int:
    """The user withdraws an app (/account/apps): its consent is forgotten and every session it holds for
    the user ends (refresh tokens stop working, access tokens with them). Returns how many sessions ended."""
    deleted, _ = Consent.objects.filter(user=user, client=client).delete()
    ended = 0
    grants = OidcGrant.objects.alive().filter(user=user, client=client).select_related("session__user")
    for grant in grants:
        ended += session_revoke(session=grant.session, reason=RevokeReason.USER_REVOKED, request=request, actor=user,
                                client_id=client.client_id)
    audit_record(event=EventType.OIDC_CONSENT_WITHDRAWN, request=request, actor=user, client_id=client.client_id,
                 consent=bool(deleted), sessions_ended=ended)
    return ended


@dataclass(frozen=True)
class AppAccess:
    client: OidcClient
    scopes: list[str]
    consented_at: object
    offline_sessions: int
    last_used_at: object


def apps_for(user) -> list[AppAccess]:
    """The apps that hold something of the user's: a consent, or a refresh token (a live offline grant)."""
    by_client: dict[int, dict] = {}
    for consent in Consent.objects.filter(user=user).select_related("client"):
        by_client[consent.client_id] = {"client": consent.client, "scopes": list(consent.scopes),
                                        "consented_at": consent.granted_at, "offline": 0, "last": None}
    for grant in OidcGrant.objects.alive().filter(user=user, offline=True).select_related("client", "session"):
        entry = by_client.setdefault(grant.client_id, {"client": grant.client, "scopes": grant.scope.split(),
                                                       "consented_at": None, "offline": 0, "last": None})
        entry["offline"] += 1
        last = grant.session.last_activity_at
        entry["last"] = last if entry["last"] is None or last > entry["last"] else entry["last"]
    return [AppAccess(client=e["client"], scopes=e["scopes"], consented_at=e["consented_at"],
                      offline_sessions=e["offline"], last_used_at=e["last"])
            for e in sorted(by_client.values(), key=lambda e: e["client"].name.lower())]


def oidc_codes_cleanup(*, now: datetime | None = None) -> int:
    """Delete authorization codes that expired more than CODE_RETENTION ago (hourly task)."""
    now = now or timezone.now()
    return delete_in_batches(AuthorizationCode.objects.filter(expires_at__lt=now - CODE_RETENTION))  # core/cleanup.py


# --- what the authorization endpoint does next ------------------------------------------------------------------
SIGN_IN = "sign_in"  # nobody signed in here: the login page
ADD_ACCOUNT = "add_account"  # the hinted account is not signed in here (or needs a new sign-in): add it
LOGIN_REQUIRED = "login_required"  # prompt=none and a sign-in would be needed
CHOOSE_ACCOUNT = "choose_account"  # prompt=select_account: the accounts of this browser
REAUTHENTICATE = "reauthenticate"  # prompt=login or max_age: the active account confirms its password
CONSENT = "consent"  # a third-party client without (enough) consent: the consent page
CONSENT_REQUIRED = "consent_required"  # prompt=none and the consent page would be needed
DECIDED = "decided"  # the consent form was answered for this account
ISSUE = "issue"  # a code for ``session``


@dataclass(frozen=True)
class Step:
    kind: str
    session: DeviceSession | None = None  # the account (browser session) the request is for


def authorization_step(*, client: OidcClient, scopes, active: DeviceSession | None, others, prompts: set[str],
                       max_age: int | None = None, hint_sub: str | None = None, login_hint: str = "",
                       answered_for: str | None = None, now: datetime | None = None) -> Step:
    """The next step of a valid authorization request (it writes nothing). ``active`` is the browser's active
    session, ``others`` its other accounts; ``hint_sub`` (id_token_hint) and ``login_hint`` pick among them;
    ``answered_for``: the session id the consent form was answered for (a POST of that form)."""
    now = now or timezone.now()
    chosen = active
    if hint_sub or login_hint:
        candidates = [active, *others] if active is not None else []
        chosen = next((r for r in candidates if (hint_sub is None or str(r.user_id) == hint_sub)
                       and (not login_hint or r.user.email.lower() == login_hint)), None)
    if chosen is None:
        if "none" in prompts:
            return Step(LOGIN_REQUIRED)
        return Step(ADD_ACCOUNT if active is not None else SIGN_IN)
    if "select_account" in prompts and answered_for is None:
        return Step(CHOOSE_ACCOUNT, chosen)
    auth_time = chosen.reauthenticated_at or chosen.created_at
    if "login" in prompts or (max_age is not None and now - auth_time > timedelta(seconds=max_age)):
        if "none" in prompts:
            return Step(LOGIN_REQUIRED, chosen)
        return Step(REAUTHENTICATE if chosen is active else ADD_ACCOUNT, chosen)
    if answered_for is not None and answered_for == str(chosen.pk):
        return Step(DECIDED, chosen)
    if not client.is_first_party and ("consent" in prompts or consent_needed(client=client, user=chosen.user,
                                                                            scopes=scopes)):
        return Step(CONSENT_REQUIRED if "none" in prompts else CONSENT, chosen)
    return Step(ISSUE, chosen)
