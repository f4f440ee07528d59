"""A refresh token names its session and carries a generation and a tag (``mrt_`` + the session id + its
generation + 256 bits + a 128-bit HMAC: sessions_app.refresh_tokens): found by primary key and checked against ``refresh_secret_hash``, which
has no index, so a refresh is an update in place on PostgreSQL (HOT) and writes nothing else. Tokens of the
formats before (``mrt_`` + 256 random bits, found by ``refresh_token_hash``; ``mrt_`` + the session id + 256
random bits, no tag) still work once: their refresh records the spent token and the successor is of the
current format."""

import secrets
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from core.crypto import b64url, b64url_decode
from core.tokens import hash_token
from oidc_provider.services.tokens import _session_of_refresh_token
from sessions_app import refresh_tokens
from sessions_app.models import DeviceSession, RevokeReason, SpentRefreshToken
from tests.support.errors import error_code

REFRESH = "/api/v1/auth/refresh"


def refresh(token):
    return APIClient().post(REFRESH, {"refreshToken": token}, format="json")


def test_a_token_names_its_session_and_is_stored_as_a_hash(tokens):
    session = DeviceSession.objects.get(pk=tokens["session"]["id"])
    raw = tokens["refreshToken"]
    assert raw.startswith("mrt_") and len(raw) == 102 and refresh_tokens.is_ours(raw)
    assert refresh_tokens.generation(raw) == session.refresh_count == 0
    assert refresh_tokens.session_id(raw) == session.pk
    assert session.refresh_secret_hash == hash_token(raw) and session.refresh_token_hash is None
    assert raw[37:80] not in str(DeviceSession.objects.filter(pk=session.pk).values().get())  # the secret is not stored


@pytest.mark.parametrize("raw", ["mrt_" + "x" * 43, "mrt_" + "!" * 65, "xyz_" + "A" * 65, "mrt_" + "A" * 66, "",
                                 "mrt_" + "!" * 98, "xyz_" + "A" * 98, "mrt_" + "A" * 99, "mrt_" + "é" * 98])
def test_what_names_no_session(raw):
    assert refresh_tokens.session_id(raw) is None
    assert not refresh_tokens.is_ours(raw)


def test_the_tag_and_the_successor_need_the_key(settings):
    """Only the key-encryption key's holder can issue a token that passes as ours or compute a successor;
    each token has one spelling (base64url's spare bits do not make a second one)."""
    session_id = uuid.uuid4()
    raw = refresh_tokens.new(session_id, 41)
    successor = refresh_tokens.successor(session_id, raw, 42)
    assert refresh_tokens.is_ours(raw) and refresh_tokens.is_ours(successor)
    assert successor != raw and refresh_tokens.successor(session_id, raw, 42) == successor  # derived: the same
    assert refresh_tokens.session_id(successor) == session_id
    assert (refresh_tokens.generation(raw), refresh_tokens.generation(successor)) == (41, 42)
    assert refresh_tokens.access_jti(successor) != refresh_tokens.access_jti(raw)
    spare = raw[:-1] + chr(ord(raw[-1]) + 1)  # the tag's last character carries 4 unused bits
    assert b64url_decode(spare[-22:]) == b64url_decode(raw[-22:]) and not refresh_tokens.is_ours(spare)
    # The generation is under the tag: another one makes a token that is not ours.
    other = raw[:26] + b64url((7).to_bytes(8, "big")) + raw[37:]
    assert refresh_tokens.session_id(other) == session_id and not refresh_tokens.is_ours(other)
    settings.AUTH_KEY_ENCRYPTION_KEY = "b3RoZXIta2V5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGVzLWxvbmc"
    assert not refresh_tokens.is_ours(raw)
    assert refresh_tokens.successor(session_id, raw, 42) != successor


def test_a_guess_at_a_sessions_secret_is_unknown_and_ends_nothing(tokens):
    """Knowing a session's id (it is in every access token) gives nothing: a token with the right id and
    another secret is not a spent token of that session, so it is refused without signing it out."""
    session_id = uuid.UUID(tokens["session"]["id"])
    guess = "mrt_" + b64url(session_id.bytes) + secrets.token_urlsafe(32)
    assert error_code(refresh(guess), 401) == "invalid_refresh_token"
    session = DeviceSession.objects.get(pk=session_id)
    assert session.revoked_at is None
    assert refresh(tokens["refreshToken"]).status_code == 200


def test_a_token_is_live_only_in_the_session_it_names(tokens, user):
    """Another session holding the same hash (impossible by chance) is never reached through the token."""
    now = timezone.now()
    other = DeviceSession.objects.create(user=user, expires_at=now + timedelta(days=1),
                                         absolute_expires_at=now + timedelta(days=1),
                                         refresh_secret_hash=hash_token(tokens["refreshToken"]))
    pair = refresh(tokens["refreshToken"]).json()
    assert pair["session"]["id"] == tokens["session"]["id"]
    assert DeviceSession.objects.get(pk=other.pk).refresh_count == 0


def _earlier_format(session_id) -> str:
    """Give the session a live token of the format before tokens named their session."""
    raw = "mrt_" + secrets.token_urlsafe(32)
    DeviceSession.objects.filter(pk=session_id).update(refresh_token_hash=hash_token(raw), refresh_secret_hash="")
    return raw


def test_a_token_of_the_earlier_format_is_refreshed_into_the_current_one(tokens):
    old = _earlier_format(tokens["session"]["id"])
    response = refresh(old)
    assert response.status_code == 200, response.content
    pair = response.json()
    session = DeviceSession.objects.get(pk=tokens["session"]["id"])
    assert refresh_tokens.session_id(pair["refreshToken"]) == session.pk
    assert session.refresh_token_hash is None and session.refresh_secret_hash == hash_token(pair["refreshToken"])
    assert session.refresh_count == 1
    spent = SpentRefreshToken.objects.get(token_hash=hash_token(old))
    assert spent.successor_hash == hash_token(pair["refreshToken"])
    # within the grace window the old token gets the very same pair; the new one goes on rotating
    again = refresh(old).json()
    assert (again["accessToken"], again["refreshToken"]) == (pair["accessToken"], pair["refreshToken"])
    assert refresh(pair["refreshToken"]).status_code == 200


def test_a_spent_token_of_the_earlier_format_is_reuse_after_the_window(tokens):
    old = _earlier_format(tokens["session"]["id"])
    assert refresh(old).status_code == 200
    SpentRefreshToken.objects.filter(token_hash=hash_token(old)).update(spent_at=timezone.now() - timedelta(hours=1))
    assert error_code(refresh(old), 401) == "refresh_token_reused"
    session = DeviceSession.objects.get(pk=tokens["session"]["id"])
    assert session.revoked_reason == RevokeReason.REFRESH_TOKEN_REUSED


def _untagged_format(session_id) -> str:
    """Give the session a live token of the format of migration 0013: named, without a tag."""
    raw = "mrt_" + b64url(uuid.UUID(str(session_id)).bytes) + secrets.token_urlsafe(32)
    DeviceSession.objects.filter(pk=session_id).update(refresh_secret_hash=hash_token(raw))
    return raw


def test_a_token_without_a_tag_is_recorded_when_spent(tokens):
    """Such a token cannot be recognised as ours once spent, so its refresh records it, as before: replayed
    within the window, reuse after it; its successor has a tag and is not recorded."""
    old = _untagged_format(tokens["session"]["id"])
    response = refresh(old)
    assert response.status_code == 200, response.content
    pair = response.json()
    assert refresh_tokens.is_ours(pair["refreshToken"])
    assert SpentRefreshToken.objects.get(token_hash=hash_token(old)).successor_hash == hash_token(pair["refreshToken"])
    again = refresh(old).json()
    assert (again["accessToken"], again["refreshToken"]) == (pair["accessToken"], pair["refreshToken"])
    SpentRefreshToken.objects.filter(token_hash=hash_token(old)).update(spent_at=timezone.now() - timedelta(hours=1))
    assert error_code(refresh(old), 401) == "refresh_token_reused"
    assert DeviceSession.objects.get(pk=tokens["session"]["id"]).revoked_reason == RevokeReason.REFRESH_TOKEN_REUSED
    assert SpentRefreshToken.objects.count() == 1


def test_switching_organization_gives_a_token_of_the_earlier_format_a_current_successor(tokens):
    old = _earlier_format(tokens["session"]["id"])
    response = APIClient().post("/api/v1/auth/switch-organization", {"organizationId": None}, format="json",
                                HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    assert response.status_code == 200, response.content
    new = response.json()["refreshToken"]
    session = DeviceSession.objects.get(pk=tokens["session"]["id"])
    assert session.refresh_token_hash is None and session.refresh_secret_hash == hash_token(new)
    assert refresh_tokens.session_id(new) == session.pk
    assert SpentRefreshToken.objects.filter(token_hash=hash_token(old), successor_hash=hash_token(new)).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="HOT updates are PostgreSQL's")
def test_a_refresh_is_an_update_in_place(tokens):
    """No indexed column changes (the expiry does not slide within SESSIONS["UPDATE_AGE_SECONDS"]), so the
    row's new version needs no index entry: PostgreSQL counts the update as HOT."""
    def hot_updates():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_get_xact_tuples_updated(%s::regclass), "
                           "pg_stat_get_xact_tuples_hot_updated(%s::regclass)",
                           [DeviceSession._meta.db_table] * 2)
            return cursor.fetchone()
    before = hot_updates()
    token = tokens["refreshToken"]
    for _ in range(3):
        response = refresh(token)
        assert response.status_code == 200, response.content
        token = response.json()["refreshToken"]
    updated, hot = hot_updates()
    assert (updated - before[0], hot - before[1]) == (3, 3)


def test_the_oidc_revocation_finds_the_session_of_either_format_live_or_spent(tokens):
    """RFC 7009 (oidc_provider.services.tokens): a refresh token is traced to its session whatever its
    format, live or spent; a guess at a session's secret is traced nowhere."""
    session_id = uuid.UUID(tokens["session"]["id"])
    current = tokens["refreshToken"]
    assert _session_of_refresh_token(current) == session_id
    assert _session_of_refresh_token("mrt_" + b64url(session_id.bytes) + secrets.token_urlsafe(32)) is None
    old = _earlier_format(session_id)
    assert _session_of_refresh_token(old) == session_id
    newer = refresh(old).json()["refreshToken"]
    assert _session_of_refresh_token(old) == session_id  # spent: its session still
    assert _session_of_refresh_token(newer) == session_id
    newest = refresh(newer).json()["refreshToken"]
    assert _session_of_refresh_token(newer) == session_id  # spent, tagged: no row, its tag names the session
    assert _session_of_refresh_token(newest) == session_id
    assert _session_of_refresh_token(newer[:80] + ("A" if newer[80] != "A" else "B") + newer[81:]) is None
