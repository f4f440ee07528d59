"""Cookie-cache revocation marks: one pipeline per transaction with a short timeout; marks that miss a
down or hung Redis are kept in the database and sent again once it answers; without Redis, the marks of
this process are checked and GET token from a snapshot cannot outlive a logout by more than a token
minted just before it."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import hash_token
from identity.services.tokens import access_token_verify
from sessions_app import cookie_cache, tasks
from sessions_app.app_settings import app_settings
from sessions_app.browser import snapshot_for
from sessions_app.models import DeviceSession, PendingRevocationMark
from sessions_app.services import session_create, session_revoke, sessions_revoke_all
from tests.web.conftest import CHROME, cache_cookie, page_login, session_cookie

# The marks and the generation go out after real commits (transaction.on_commit).
pytestmark = pytest.mark.django_db(transaction=True)

SESSION = "/api/v1/auth/session"
TOKEN = "/api/v1/auth/token"


def browser(user) -> Client:
    client = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(client, user.email).status_code == 302
    client.cookies.pop(app_settings.CACHE_COOKIE, None)
    assert client.get(SESSION).status_code == 200  # the row, and a fresh snapshot
    assert cache_cookie(client).value
    return client


def row_of(client) -> DeviceSession:
    return DeviceSession.objects.get(browser_key_hash=hash_token(session_cookie(client).value))


def bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {session_create(user=user).access_token}")
    return client


@pytest.fixture(autouse=True)
def _no_outage_left_over(monkeypatch):
    """Each test starts in a process that has seen no outage."""
    monkeypatch.setattr(cookie_cache, "_failed_at", {})
    monkeypatch.setattr(cookie_cache, "_resend_needed", set())


@pytest.fixture
def published(monkeypatch):
    """Every call of marks_publish, with the marks it got (still published)."""
    calls = []
    original = cookie_cache.marks_publish

    def spy(marks):
        calls.append(list(marks))
        return original(marks)

    monkeypatch.setattr(cookie_cache, "marks_publish", spy)
    return calls


class FlakyRedis:
    """A TCP front for the real Redis at a URL of its own: it forwards, or (``hang()``) accepts and never
    answers, as a hung Redis does, until ``heal()``. The URL stays the same throughout, as in production."""

    def __init__(self, real_url: str):
        real = urlsplit(real_url)
        self.target = (real.hostname or "127.0.0.1", real.port or 6379)
        self.hanging = False
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.url = f"redis://127.0.0.1:{self.server.getsockname()[1]}{real.path or '/0'}"
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def hang(self):
        self.hanging = True

    def heal(self):
        self.hanging = False

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source, sink, from_client):
        try:
            while data := source.recv(65536):
                if from_client and self.hanging:
                    continue  # swallowed: the command is never answered
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self):
        self.server.close()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


@pytest.fixture
def hung(settings):
    """REDIS_URL pointed at a FlakyRedis, hanging; ``hung.heal()`` / ``hung.hang()`` switch it."""
    flaky = FlakyRedis(django_settings.REDIS_URL)
    settings.REDIS_URL = flaky.url
    flaky.hang()
    yield flaky
    flaky.close()


def redis():
    return cookie_cache._redis()


# --- one batch per transaction ---------------------------------------------------------------------------

def test_revoking_every_session_publishes_once_after_the_commit(user, published):
    for _ in range(5):
        session_create(user=user)
    with transaction.atomic():
        assert sessions_revoke_all(user=user, reason="admin") == 5
        assert published == []  # nothing before the commit
    (marks,) = published
    sids = {str(pk) for pk in DeviceSession.objects.filter(user=user).values_list("pk", flat=True)}
    assert {key for key, _, _ in marks} == {f"mca:revoked:sid:{sid}" for sid in sids} | {
        f"mca:revoked:user-before:{user.pk}"}


def test_a_rolled_back_revocation_publishes_nothing(user, published):
    session = session_create(user=user).session
    with pytest.raises(RuntimeError), transaction.atomic():
        session_revoke(session=session, reason="admin")
        raise RuntimeError
    assert published == []
    session_revoke(session=session, reason="admin")  # a later transaction gets a batch of its own
    assert [[key for key, _, _ in marks] for marks in published] == [[f"mca:revoked:sid:{session.pk}"]]


def test_a_timestamp_mark_takes_the_time_of_the_commit(user, settings):
    settings.REDIS_URL = ""
    with transaction.atomic():
        sessions_revoke_all(user=user, reason="admin")
        before_commit = time.time()
        time.sleep(0.01)
    assert float(cache.get(f"mca:revoked:user-before:{user.pk}")) > before_commit


# --- a hung Redis, then healed -----------------------------------------------------------------------------

@pytest.mark.redis
def test_a_hung_redis_costs_one_short_timeout_and_the_marks_are_kept(user, hung):
    for _ in range(6):
        session_create(user=user)
    started = time.monotonic()
    sessions_revoke_all(user=user, reason="admin")
    took = time.monotonic() - started
    assert took < 1.0, took  # one pipeline, 0.25 s timeout: not a timeout per session
    keys = set(PendingRevocationMark.objects.values_list("key", flat=True))
    assert len(keys) == 7 and f"mca:revoked:user-before:{user.pk}" in keys
    # Within the pause after the failure, Redis is not tried again: straight to the table.
    other = session_create(user=user).session
    started = time.monotonic()
    session_revoke(session=other, reason="admin")
    assert time.monotonic() - started < 0.2
    assert PendingRevocationMark.objects.filter(key=f"mca:revoked:sid:{other.pk}").exists()


def presenting_old_snapshot(client, raw_key, sid):
    """The browser (or a copy of its cookies) presents its session cookie with the fresh snapshot it was
    given before the revocation."""
    row = DeviceSession.objects.select_related("user", "active_organization").get(pk=sid)
    row.revoked_at = None
    client.cookies[app_settings.SESSION_COOKIE] = raw_key
    client.cookies[app_settings.CACHE_COOKIE] = snapshot_for(row, raw_key)
    return client


@pytest.mark.redis
def test_logout_during_a_hang_is_refused_and_resent_when_redis_answers(user, hung, monkeypatch):
    hung.heal()
    client = browser(user)  # the snapshot is issued while Redis answers
    raw_key, sid = session_cookie(client).value, row_of(client).pk
    hung.hang()
    assert bearer(user).delete(f"/api/v1/auth/sessions/{sid}").status_code == 204
    assert PendingRevocationMark.objects.filter(key=f"mca:revoked:sid:{sid}").exists()
    # During the hang this process asks the database: the revoked session is refused.
    assert presenting_old_snapshot(client, raw_key, sid).get(SESSION).status_code == 401
    hung.heal()
    assert redis().get(f"mca:revoked:sid:{sid}") is None  # the mark never reached Redis
    monkeypatch.setattr(cookie_cache, "_failed_at", {hung.url: time.monotonic() - 60})  # the pause is over
    # This process saw the outage: it sends the pending marks before it trusts a lookup again.
    assert presenting_old_snapshot(client, raw_key, sid).get(SESSION).status_code == 401
    assert redis().get(f"mca:revoked:sid:{sid}") == b"1"
    assert not PendingRevocationMark.objects.exists()


@pytest.mark.redis
def test_a_process_that_saw_no_outage_is_covered_by_the_resend_task(user, hung, monkeypatch):
    hung.heal()
    client = browser(user)
    raw_key, sid = session_cookie(client).value, row_of(client).pk
    hung.hang()
    assert bearer(user).delete(f"/api/v1/auth/sessions/{sid}").status_code == 204
    hung.heal()
    # Another process (it saw no outage): with no mark in Redis, its lookup would let the snapshot answer.
    monkeypatch.setattr(cookie_cache, "_failed_at", {})
    monkeypatch.setattr(cookie_cache, "_resend_needed", set())
    assert redis().get(f"mca:revoked:sid:{sid}") is None
    assert tasks.revocation_marks_resend.delay().get() is True  # the beat task (every 30 s)
    assert presenting_old_snapshot(client, raw_key, sid).get(SESSION).status_code == 401
    assert presenting_old_snapshot(client, raw_key, sid).get(TOKEN).status_code == 401
    assert not PendingRevocationMark.objects.exists()


@pytest.mark.redis
def test_the_next_write_that_gets_through_takes_the_pending_marks_along(user, hung, monkeypatch):
    lost = session_create(user=user).session
    session_revoke(session=lost, reason="admin")  # kept: Redis hangs
    assert PendingRevocationMark.objects.count() == 1
    hung.heal()
    monkeypatch.setattr(cookie_cache, "_failed_at", {})  # e.g. another process, or the pause is over
    later = session_create(user=user).session
    session_revoke(session=later, reason="admin")
    assert redis().get(f"mca:revoked:sid:{lost.pk}") == b"1"
    assert redis().get(f"mca:revoked:sid:{later.pk}") == b"1"
    assert not PendingRevocationMark.objects.exists()


@pytest.mark.redis
def test_a_resent_older_timestamp_never_hides_a_newer_one(user):
    key = f"mca:revoked:user-before:{user.pk}"
    redis().delete(key)
    now = time.time()
    PendingRevocationMark.objects.create(key=key, value=repr(now - 100),
                                         expires_at=timezone.now() + timedelta(minutes=5))
    assert cookie_cache.marks_publish([(key, repr(now), 60)])  # the newer one, with the old one resent
    assert float(redis().get(key)) == now
    PendingRevocationMark.objects.create(key=key, value=repr(now - 50),
                                         expires_at=timezone.now() + timedelta(minutes=5))
    assert cookie_cache.revocation_marks_resend()
    assert float(redis().get(key)) == now


@pytest.mark.redis
def test_expired_pending_marks_are_dropped_unsent(user):
    key = f"mca:revoked:sid:{user.pk}"
    redis().delete(key)
    PendingRevocationMark.objects.create(key=key, value="1", expires_at=timezone.now() - timedelta(seconds=1))
    assert cookie_cache.revocation_marks_resend()
    assert redis().get(key) is None and not PendingRevocationMark.objects.exists()


def test_without_redis_nothing_is_ever_pending(user, settings):
    settings.REDIS_URL = ""
    session_revoke(session=session_create(user=user).session, reason="admin")
    assert not PendingRevocationMark.objects.exists()
    assert cookie_cache.revocation_marks_resend() is True


# --- without Redis ---------------------------------------------------------------------------------------

@pytest.fixture
def no_redis(settings):
    settings.REDIS_URL = ""
    settings.SESSIONS = {**settings.SESSIONS}
    settings.SESSIONS.pop("REVOCATION_CHECK", None)


def test_without_redis_this_process_sees_a_logout_at_once(user, no_redis):
    client = browser(user)
    sid = row_of(client).pk
    assert bearer(user).delete(f"/api/v1/auth/sessions/{sid}").status_code == 204
    assert client.get(SESSION).status_code == 401  # the snapshot is fresh, the mark is in this process
    assert client.get(TOKEN).status_code == 401


def test_without_redis_another_process_answers_no_longer_than_the_snapshot(user, no_redis):
    """A process that did not see the logout (its marks are its own): GET token answers from the
    snapshot until the snapshot goes stale, and every token it mints expires no later than a token
    minted when the snapshot was issued."""
    client = browser(user)
    row = row_of(client)
    payload = cookie_cache.snapshot_decode(cache_cookie(client).value, key_hash=row.browser_key_hash)
    assert bearer(user).delete(f"/api/v1/auth/sessions/{row.pk}").status_code == 204
    cache.delete(f"mca:revoked:sid:{row.pk}")  # this process never saw it
    response = client.get(TOKEN)
    assert response.status_code == 200
    claims = access_token_verify(response.json()["accessToken"])
    assert claims["exp"] <= payload["iat"] + 900 + 1
    assert payload["exp"] <= payload["iat"] + app_settings.COOKIE_CACHE_TTL.total_seconds()
    client.cookies.pop(app_settings.CACHE_COOKIE)  # what going stale does
    assert client.get(TOKEN).status_code == 401


def test_a_token_from_an_old_snapshot_ends_when_one_minted_at_its_issue_would(user, no_redis, settings):
    settings.SESSIONS = {**settings.SESSIONS, "COOKIE_CACHE_SECONDS": 3600}
    client = browser(user)
    row = DeviceSession.objects.select_related("user", "active_organization").get(pk=row_of(client).pk)
    row.loaded_at = time.time() - 600  # the database vouched for the session ten minutes ago
    client.cookies[app_settings.CACHE_COOKIE] = snapshot_for(row, session_cookie(client).value)
    response = client.get(TOKEN)
    assert 290 <= response.json()["expiresIn"] <= 301
    claims = access_token_verify(response.json()["accessToken"])
    assert claims["exp"] - claims["iat"] == response.json()["expiresIn"]
    assert cache_cookie(client) is not None and app_settings.CACHE_COOKIE not in response.cookies  # a hit
    # Less than a minute left: the view mints from the row (a full lifetime) and issues a new snapshot.
    row.loaded_at = time.time() - 870
    client.cookies[app_settings.CACHE_COOKIE] = snapshot_for(row, session_cookie(client).value)
    response = client.get(TOKEN)
    assert response.json()["expiresIn"] == 900
    assert app_settings.CACHE_COOKIE in response.cookies
