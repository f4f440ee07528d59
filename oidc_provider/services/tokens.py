"""The token endpoint's work: redeem a code (once: a conditional UPDATE), refresh, revoke (RFC 7009).

What a client gets is ours: a device session of its own per redemption (sessions_app.services.session_create,
named after the client, listed in "Where you're signed in"), an access token for that session
(identity.services.tokens, with ``client_id`` and ``scope`` added) so resource servers, the bearer check and
introspection take it as they are, and with ``offline_access`` the session's refresh token, which rotates and
detects reuse exactly as every refresh token does (sessions_app.services.session_refresh).

Errors are Authlib's OAuth2Error subclasses: the token endpoint answers them as RFC 6749 says.
"""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import InvalidGrantError
from django.db import transaction
from django.utils import timezone

from audit.models import EventType
from audit.services import audit_record
from core.tokens import hash_token
from identity.services.tokens import TokenError, access_token_issue, access_token_verify
from oidc_provider.models import AuthorizationCode, OidcClient, OidcGrant
from oidc_provider.services.id_tokens import id_token_issue
from sessions_app import refresh_tokens
from sessions_app.models import DeviceSession, RevokeReason, SpentRefreshToken
from sessions_app.services import (REFRESH_TOKEN_PREFIX, RefreshError, session_create, session_of_live_refresh_token,
                                    session_refresh, session_revoke)

DEVICE_SUFFIX = " (app sign-in)"


def _device_name(client: OidcClient) -> str:
    return client.name[: 128 - len(DEVICE_SUFFIX)] + DEVICE_SUFFIX


def _access_token(*, user, session_id, amr, client: OidcClient, scope: str):
    return access_token_issue(user=user, session_id=session_id, amr=amr,
                              extra_claims={"client_id": client.client_id, "scope": scope})


def code_for_redemption(*, code, client: OidcClient, request=None) -> AuthorizationCode | None:
    """The unredeemed, unexpired code row of ``client``, or None. A code redeemed before is reuse: what
    it issued is revoked and the request refused (InvalidGrantError)."""
    if not isinstance(code, str) or not code or len(code) > 512:
        return None
    row = AuthorizationCode.objects.select_related("user", "client").filter(code_hash=hash_token(code)).first()
    if row is None or row.client_id != client.pk:
        return None
    if row.redeemed_at is not None:
        code_reused(code=row, request=request)
    if row.expires_at <= timezone.now():
        return None
    return row


def code_reused(*, code: AuthorizationCode, request=None):
    """A code presented again: the session its first redemption opened ends (with its tokens), audited;
    the request is refused."""
    with transaction.atomic():
        row = AuthorizationCode.objects.select_for_update().get(pk=code.pk)  # after the winner's commit
        revoked = False
        if row.grant_session_id is not None:
            session = DeviceSession.objects.select_related("user").filter(pk=row.grant_session_id).first()
            if session is not None:
                revoked = session_revoke(session=session, reason=RevokeReason.REFRESH_TOKEN_REUSED, request=request,
                                         client_id=code.client.client_id, oidc="authorization_code_reused")
        audit_record(event=EventType.OIDC_CODE_REUSED, request=request, subject=code.user, success=False,
                     session=row.grant_session_id, client_id=code.client.client_id, revoked=revoked)
    raise InvalidGrantError("The authorization code was already used; the tokens issued for it are revoked.")


def _token_body(*, access, id_token: str, scope: str, refresh_token: str = "") -> dict:
    body = {"access_token": access.token, "token_type": "Bearer", "expires_in": access.expires_in,
            "scope": scope, "id_token": id_token}
    if refresh_token:
        body["refresh_token"] = refresh_token
    return body


def code_redeem(*, code: AuthorizationCode, client: OidcClient, request=None) -> dict:
    """Exchange a code for tokens, once: the conditional UPDATE of ``redeemed_at`` lets exactly one
    request through whatever the concurrency; every other one is reuse (``code_reused``)."""
    user = code.user
    if not user.is_active:
        raise InvalidGrantError("The account cannot sign in.")
    scopes = code.scope.split()
    offline = "offline_access" in scopes
    with transaction.atomic():
        now = timezone.now()
        won = AuthorizationCode.objects.filter(pk=code.pk, redeemed_at__isnull=True, expires_at__gt=now).update(
            redeemed_at=now)
        if won:
            # One session per redemption; without offline_access one per (client, browser session): signing in
            # to the same app again from the same browser replaces it rather than adding a row.
            device_id = "" if offline else f"oidc:{client.client_id}:{code.browser_session_id}"[:128]
            pair = session_create(user=user, request=request, device_id=device_id, device_name=_device_name(client),
                                  tokens=offline, amr=code.amr, fresh=False)
            session = pair.session
            OidcGrant.objects.create(session=session, client=client, user=user, scope=code.scope, offline=offline,
                                     browser_session_id=code.browser_session_id, auth_time=code.auth_time,
                                     amr=code.amr, created_at=now)
            AuthorizationCode.objects.filter(pk=code.pk).update(grant_session=session)
            access = _access_token(user=user, session_id=session.pk, amr=code.amr, client=client, scope=code.scope)
            id_token = id_token_issue(client=client, user=user, scopes=scopes, auth_time=code.get_auth_time(),
                                      amr=code.amr, sid=code.browser_session_id, nonce=code.nonce or None,
                                      access_token=access.token)
            audit_record(event=EventType.OIDC_TOKEN_ISSUED, request=request, actor=user, session=session,
                         client_id=client.client_id, grant_type="authorization_code", scope=code.scope,
                         offline=offline, jti=access.claims["jti"])
            return _token_body(access=access, id_token=id_token, scope=code.scope, refresh_token=pair.refresh_token)
    if AuthorizationCode.objects.filter(pk=code.pk, redeemed_at__isnull=False).exists():
        code_reused(code=code, request=request)
    raise InvalidGrantError("The authorization code has expired.")


def _session_of_refresh_token(raw: str):
    """The session whose live token this is, or which it was spent in (its row, or its tag: a refresh
    token of ours names its session), or None."""
    token_hash = hash_token(raw)
    live = session_of_live_refresh_token(raw, token_hash)
    if live is not None:
        return live.pk
    if refresh_tokens.is_ours(raw):
        return refresh_tokens.session_id(raw)
    return SpentRefreshToken.objects.filter(token_hash=token_hash).values_list("session_id", flat=True).first()


def grant_for_refresh_token(*, raw_token, client: OidcClient) -> OidcGrant | None:
    """The grant of ``client`` whose session holds (or held: reuse detection needs it) this refresh token."""
    if not isinstance(raw_token, str) or not raw_token.startswith(REFRESH_TOKEN_PREFIX) or len(raw_token) > 256:
        return None
    session_id = _session_of_refresh_token(raw_token)
    if session_id is None:
        return None
    return OidcGrant.objects.select_related("client", "user").filter(session_id=session_id, client=client,
                                                                     offline=True).first()


def grant_refresh(*, grant: OidcGrant, raw_token: str, request=None) -> dict:
    """A new token set for an offline grant: the refresh token rotates through sessions_app (a spent one
    presented again ends the session, except within the grace window); a new access token and id_token
    (same ``auth_time``, ``sid`` and ``amr`` as the sign-in, no ``nonce``)."""
    try:
        pair = session_refresh(raw_token=raw_token, request=request)
    except RefreshError as exc:
        raise InvalidGrantError(exc.message) from None
    client, user = grant.client, pair.session.user
    access = _access_token(user=user, session_id=pair.session.pk, amr=grant.amr, client=client, scope=grant.scope)
    id_token = id_token_issue(client=client, user=user, scopes=grant.scope.split(),
                              auth_time=int(grant.auth_time.timestamp()), amr=grant.amr,
                              sid=grant.browser_session_id, access_token=access.token)
    with transaction.atomic():
        audit_record(event=EventType.OIDC_TOKEN_ISSUED, request=request, actor=user, session=pair.session,
                     client_id=client.client_id, grant_type="refresh_token", jti=access.claims["jti"])
    return _token_body(access=access, id_token=id_token, scope=grant.scope, refresh_token=pair.refresh_token)


def token_revoke(*, client: OidcClient, token, token_type_hint=None, request=None) -> bool:
    """RFC 7009: a refresh or access token of ``client`` ends its session (and so every token of the
    grant). Anything else (unknown, another client's, already revoked) changes nothing; the endpoint answers
    200 either way. Returns whether a session ended."""
    if not isinstance(token, str) or not token or len(token) > 8192:
        return False
    grant = None
    if token.startswith(REFRESH_TOKEN_PREFIX):
        grant = grant_for_refresh_token(raw_token=token, client=client)
    else:
        try:
            claims = access_token_verify(token)
        except TokenError:
            claims = None
        if claims is not None and claims.get("client_id") == client.client_id:
            grant = OidcGrant.objects.filter(session_id=claims.get("sid"), client=client).first() \
                if _is_uuid(claims.get("sid")) else None
    if grant is None:
        return False
    with transaction.atomic():
        session = DeviceSession.objects.select_related("user").get(pk=grant.session_id)
        ended = session_revoke(session=session, reason=RevokeReason.LOGOUT, request=request,
                               client_id=client.client_id, oidc="token_revoked")
        audit_record(event=EventType.OIDC_TOKEN_REVOKED, request=request, subject=session.user, session=session,
                     client_id=client.client_id, ended=ended)
    return ended


def _is_uuid(value) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
