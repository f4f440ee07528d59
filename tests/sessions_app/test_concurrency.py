"""Concurrent refreshes with one token, as real HTTP requests racing on PostgreSQL.

The live server answers each request in its own thread with its own database connection, so these
requests really do meet in the database; a barrier lines the client threads up.
"""

import json
import threading
import urllib.error
import urllib.request

import pytest

from audit.models import AuditEvent, EventType
from core.tokens import hash_token
from sessions_app.models import DeviceSession, RevokeReason, SpentRefreshToken

pytestmark = pytest.mark.postgres

N = 8
# The live server's middleware was built with the production posture (HTTPS redirect) before any
# test's settings applied; requests arrive as they would through a TLS-terminating proxy.
HEADERS = {"Content-Type": "application/json", "X-Forwarded-Proto": "https"}


@pytest.fixture(autouse=True)
def _behind_tls_proxy(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def _post(url, body, barrier, results, index):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=HEADERS)
    barrier.wait()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            results[index] = (response.status, json.loads(response.read()))
    except urllib.error.HTTPError as error:
        results[index] = (error.code, json.loads(error.read()))
    except Exception as error:  # noqa: BLE001 - reported by the assertion below
        results[index] = ("exception", repr(error))


def refresh_concurrently(live_server, token, n=N):
    url = live_server.url + "/api/v1/auth/refresh"
    barrier = threading.Barrier(n)
    results = [None] * n
    threads = [threading.Thread(target=_post, args=(url, {"refreshToken": token}, barrier, results, i))
               for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(r is not None and r[0] != "exception" for r in results), results
    return results


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
        assert session.refresh_token_hash == hash_token(new_token)  # the one live refresh token
        assert SpentRefreshToken.objects.filter(token_hash=hash_token(token)).count() == 1
        assert SpentRefreshToken.objects.filter(session=session).count() == round_ + 1
        token = new_token

    assert not AuditEvent.objects.filter(event=EventType.REFRESH_REUSE_DETECTED).exists()
    refreshes = AuditEvent.objects.filter(event=EventType.TOKEN_REFRESHED, session_id=session_id)
    assert refreshes.count() == 3 * N
    assert refreshes.filter(context__replayed_within_grace=True).count() == 3 * (N - 1)  # one rotation a round


def test_concurrent_refreshes_without_grace_revoke_the_session(live_server, tokens, settings):
    settings.AUTH_REFRESH_GRACE_SECONDS = 0
    results = refresh_concurrently(live_server, tokens["refreshToken"])
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [401] * (N - 1), results
    codes = {body["error"]["code"] for status, body in results if status == 401}
    assert "refresh_token_reused" in codes and codes <= {"refresh_token_reused", "session_revoked"}

    session = DeviceSession.objects.get(pk=tokens["session"]["id"])
    assert session.revoked_at is not None and session.revoked_reason == RevokeReason.REFRESH_TOKEN_REUSED
    assert SpentRefreshToken.objects.filter(session=session).count() == 1
    (winner,) = [body for status, body in results if status == 200]
    assert session.refresh_token_hash == hash_token(winner["refreshToken"])
    # The winner's pair died with the session.
    request = urllib.request.Request(live_server.url + "/api/v1/auth/me",
                                     headers={**HEADERS, "Authorization": f"Bearer {winner['accessToken']}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert AuditEvent.objects.filter(event=EventType.REFRESH_REUSE_DETECTED, session_id=session.pk).exists()
