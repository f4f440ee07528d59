"""Concurrent refreshes with one token, as real HTTP requests racing on PostgreSQL.

The live server answers each request in its own thread with its own database connection, so these
requests really do meet in the database; a barrier lines the client threads up.
"""

import pytest

from audit.models import AuditEvent, EventType
from core.tokens import hash_token
from sessions_app.models import DeviceSession, RevokeReason, SpentRefreshToken
from tests.support.races import http_race, request

pytestmark = pytest.mark.postgres

N = 8


@pytest.fixture(autouse=True)
def _behind_tls_proxy(settings):
    # The live server's middleware was built with the production posture (HTTPS redirect) before any
    # test's settings applied; the race harness sends requests as through a TLS-terminating proxy.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def refresh_concurrently(live_server, token, n=N):
    return http_race([("POST", live_server.url + "/api/v1/auth/refresh", None, {"refreshToken": token})] * n)


def test_concurrent_refreshes_get_one_identical_pair(live_server, tokens, settings):
    settings.AUTH_REFRESH_GRACE_SECONDS = 10
    token = tokens["refreshToken"]
    session_id = tokens["session"]["id"]
    for round_ in range(3):  # each round races with the token the previous one produced
        results = refresh_concurrently(live_server, token)
        assert [status for status, _ in results] == [200] * N, results
        pairs = {(body["accessToken"], body["refreshToken"]) for _, body in results}
        assert len(pairs) == 1, f"round {round_}: {len(pairs)} different pairs"
        assert {body["session"]["id"] for _, body in results} == {session_id}
        (_, new_token), = pairs

        session = DeviceSession.objects.get(pk=session_id)
        assert session.is_alive()
        assert session.refresh_secret_hash == hash_token(new_token)  # the one live refresh token
        assert not SpentRefreshToken.objects.exists()  # tagged tokens: spent without a row
        token = new_token

    assert not AuditEvent.objects.filter(event=EventType.REFRESH_REUSE_DETECTED).exists()
    # One rotation a round, counted on the session; the replays within the grace window are audited.
    assert DeviceSession.objects.get(pk=session_id).refresh_count == 3
    refreshes = AuditEvent.objects.filter(event=EventType.TOKEN_REFRESHED, session_id=session_id)
    assert refreshes.count() == refreshes.filter(context__replayed_within_grace=True).count() == 3 * (N - 1)


def test_concurrent_refreshes_without_grace_revoke_the_session(live_server, tokens, settings):
    settings.AUTH_REFRESH_GRACE_SECONDS = 0
    results = refresh_concurrently(live_server, tokens["refreshToken"])
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [401] * (N - 1), results
    codes = {body["error"]["code"] for status, body in results if status == 401}
    assert "refresh_token_reused" in codes and codes <= {"refresh_token_reused", "session_revoked"}

    session = DeviceSession.objects.get(pk=tokens["session"]["id"])
    assert session.revoked_at is not None and session.revoked_reason == RevokeReason.REFRESH_TOKEN_REUSED
    assert not SpentRefreshToken.objects.exists()
    (winner,) = [body for status, body in results if status == 200]
    assert session.refresh_secret_hash == hash_token(winner["refreshToken"])
    # The winner's pair died with the session.
    assert request("GET", live_server.url + "/api/v1/auth/me", token=winner["accessToken"]).status == 401
    assert AuditEvent.objects.filter(event=EventType.REFRESH_REUSE_DETECTED, session_id=session.pk).exists()
