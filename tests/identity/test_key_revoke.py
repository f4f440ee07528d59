"""Revoking a compromised signing key (``rotate_signing_key --revoke <kid>``): it leaves the JWKS, every
token it signed stops working on every path that verifies one, a new key signs, and all of it is audited.
Also: ``check --deploy`` flags an ``AUTH_PUBLIC_URL`` that is not https outside DEBUG."""

import io
import json
from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from identity.models import SigningKey
from identity.services import keys
from identity.services.tokens import TokenError, _sign, access_token_verify
from service_accounts.services import service_account_create
from tests.conftest import login
from tests.identity.test_tokens import parts
from tests.service_accounts.conftest import introspect, obtain
from tests.web.conftest import CHROME, page_login

ME = "/api/v1/auth/me"
JWKS = "/.well-known/jwks.json"


def kid_of(token: str) -> str:
    return parts(token)[0]["kid"]


def published() -> set[str]:
    return {k["kid"] for k in APIClient().get(JWKS).json()["keys"]}


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def revoke(*kids, reason=None) -> dict:
    out = io.StringIO()
    args = [arg for kid in kids for arg in ("--revoke", kid)] + (["--reason", reason] if reason else [])
    call_command("rotate_signing_key", *args, stdout=out)
    return json.loads(out.getvalue())


def test_revoking_the_signer_stops_its_tokens_everywhere_and_a_new_key_signs(api, user):
    tokens = login(api, user.email)
    old_kid = kid_of(tokens["accessToken"])
    assert bearer(tokens["accessToken"]).get(ME).status_code == 200
    assert old_kid in published()  # the JWKS document is cached in this process now

    result = revoke(old_kid, reason="key leaked in a backup")

    assert result["revoked"] == [old_kid] and result["alreadyRevoked"] == []
    new_kid = result["kid"]
    assert new_kid != old_kid and keys.signing_key_current().kid == new_kid
    # Gone from the JWKS (both the fast path's in-process copy and the view) ...
    assert published() == {new_kid}
    assert {k["kid"] for k in APIClient().get("/api/v1/auth/jwks", HTTP_ACCEPT="application/json").json()["keys"]} \
        == {new_kid}
    # ... refused by our own bearer authentication, although it has not expired ...
    response = bearer(tokens["accessToken"]).get(ME)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"
    with pytest.raises(TokenError) as refused:
        access_token_verify(tokens["accessToken"])
    assert refused.value.reason == "unknown_kid"
    # ... and the session itself goes on: its refresh token gets a pair signed by the new key.
    pair = APIClient().post("/api/v1/auth/refresh", {"refreshToken": tokens["refreshToken"]}, format="json").json()
    assert kid_of(pair["accessToken"]) == new_kid
    assert bearer(pair["accessToken"]).get(ME).status_code == 200

    row = SigningKey.objects.get(kid=old_kid)
    assert row.revoked_at is not None and row.retires_at <= row.revoked_at
    event = AuditEvent.objects.get(event=EventType.SIGNING_KEY_REVOKED)
    assert event.success and event.context == {"kid": old_kid, "reason": "key leaked in a backup",
                                               "successor": new_kid}
    rotated = AuditEvent.objects.get(event=EventType.SIGNING_KEY_ROTATED)
    assert rotated.context["kid"] == new_kid and rotated.context["reason"] == "revocation: key leaked in a backup"


def test_introspection_says_inactive_for_a_token_of_a_revoked_key(api, user):
    tokens = login(api, user.email)
    account = service_account_create(name="resource-server")
    service = obtain(api, account.client.client_id, account.client_secret).json()["accessToken"]
    assert introspect(bearer(service), tokens["accessToken"]).json()["active"] is True

    revoke(kid_of(tokens["accessToken"]))

    # The service token was signed by the same key: it stops working too; a new one is signed by the new key.
    assert introspect(bearer(service), tokens["accessToken"]).status_code == 401
    fresh = obtain(api, account.client.client_id, account.client_secret).json()["accessToken"]
    assert kid_of(fresh) != kid_of(tokens["accessToken"])
    assert introspect(bearer(fresh), tokens["accessToken"]).json() == {"active": False}


def test_get_token_signs_with_the_new_key_after_a_revocation(user):
    browser = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(browser, user.email).status_code == 302
    first = browser.get("/api/v1/auth/token").json()["accessToken"]
    second = browser.get("/api/v1/auth/token").json()["accessToken"]  # from the cookie cache's snapshot
    revoke(kid_of(first))
    after = browser.get("/api/v1/auth/token").json()["accessToken"]  # the snapshot is still fresh
    assert kid_of(after) != kid_of(first)
    assert bearer(after).get(ME).status_code == 200
    assert bearer(second).get(ME).status_code == 401


def test_revoking_a_retired_key_ends_the_tokens_it_still_had(api, user):
    tokens = login(api, user.email)
    old_kid = kid_of(tokens["accessToken"])
    rotated = keys.signing_key_rotate()
    assert bearer(tokens["accessToken"]).get(ME).status_code == 200  # retired keys keep verifying ...
    assert published() == {old_kid, rotated.kid}

    result = revoke(old_kid)

    assert bearer(tokens["accessToken"]).get(ME).status_code == 401  # ... revoked ones do not
    assert published() == {result["kid"], rotated.kid}
    # A new key signs even though the revoked one no longer did: its store is suspect.
    assert result["kid"] not in (old_kid, rotated.kid) and keys.signing_key_current().kid == result["kid"]


def test_a_revoked_key_waiting_to_start_never_signs(db, monkeypatch):
    signer = keys.signing_key_current()
    waiting = keys.signing_key_rotate(publish_ahead=timedelta(days=1))
    assert published() == {signer.kid, waiting.kid}
    result = revoke(waiting.kid)
    later = waiting.activates_at + timedelta(hours=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    keys._cache_clear()
    assert keys.signing_key_current().kid == result["kid"]
    assert waiting.kid not in {k.kid for k in keys.published_keys()}
    assert not SigningKey.objects.pending_at(later).filter(kid=waiting.kid).exists()


def test_several_keys_at_once_and_again(db, user):
    first = keys.signing_key_current().kid
    second = keys.signing_key_rotate().kid
    result = revoke(first, second, first)
    assert sorted(result["revoked"]) == sorted([first, second])
    again = revoke(first)
    assert again["revoked"] == [] and again["alreadyRevoked"] == [first]
    assert AuditEvent.objects.filter(event=EventType.SIGNING_KEY_REVOKED, success=True).count() == 2
    assert published() == {again["kid"], result["kid"]}


def test_an_unknown_kid_changes_nothing_and_is_audited(api, user):
    tokens = login(api, user.email)
    kid = kid_of(tokens["accessToken"])
    with pytest.raises(CommandError, match="no signing key with kid nope"):
        revoke(kid, "nope")
    assert SigningKey.objects.get(kid=kid).revoked_at is None  # not even the known one
    assert SigningKey.objects.count() == 1 and keys.signing_key_current().kid == kid
    assert bearer(tokens["accessToken"]).get(ME).status_code == 200
    refused = AuditEvent.objects.get(event=EventType.SIGNING_KEY_REVOKED)
    assert refused.success is False and refused.context == {"kid": "nope", "reason": "unknown_kid"}
    assert not AuditEvent.objects.filter(event=EventType.SIGNING_KEY_ROTATED).exists()


def test_a_token_signed_by_a_revoked_key_in_another_process_window_is_refused(db, user):
    """A process that has not seen the revocation yet (up to a second) may still sign with the key: those
    tokens are refused like every other token of the key."""
    signer = keys.signing_key_current()
    revoke(signer.kid)
    now = int(timezone.now().timestamp())
    claims = {"iss": keys.app_settings.ISSUER, "aud": keys.app_settings.AUDIENCE, "sub": str(user.pk),
              "email": user.email, "role": "user", "sid": "00000000-0000-0000-0000-000000000000",
              "iat": now, "exp": now + 60, "jti": "x"}
    with pytest.raises(TokenError) as refused:
        access_token_verify(_sign(signer, claims))  # signed with the old signer, as a stale process would
    assert refused.value.reason == "unknown_kid"


# --- check --deploy: AUTH_PUBLIC_URL --------------------------------------------------------------------

def _public_url_warnings():
    return [m for m in run_checks(include_deployment_checks=True) if m.id == "identity.W003"]


@pytest.mark.parametrize("url", ["http://auth.example.com", "auth.example.com", "ftp://auth.example.com"])
def test_check_deploy_flags_a_public_url_that_is_not_https(settings, url):
    settings.DEBUG = False
    settings.AUTH_PUBLIC_URL = url
    (warning,) = _public_url_warnings()
    assert "AUTH_PUBLIC_URL" in warning.msg and warning.hint


def test_check_deploy_accepts_https_and_anything_in_debug(settings):
    settings.DEBUG = False
    settings.AUTH_PUBLIC_URL = "https://auth.example.com"
    assert _public_url_warnings() == []
    settings.AUTH_PUBLIC_URL = "HTTPS://auth.example.com"
    assert _public_url_warnings() == []
    settings.DEBUG = True
    settings.AUTH_PUBLIC_URL = "http://localhost:8000"
    assert _public_url_warnings() == []
