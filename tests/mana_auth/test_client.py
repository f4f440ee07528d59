"""Client SDK against a fake provider: token handling, refresh before expiry, single-flight refresh
across threads and asyncio tasks, one retry after a 401, and the storages."""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
import threading
import time

import pytest

from mana_auth import ApiError, AsyncClient, Client, FileStorage, MemoryStorage, NotLoggedIn
from mana_auth.storage import KeyringStorage
from tests.support.races import race

PREFIX = "/api/v1/auth/"


class FakeAuthProvider:
    """Issues pairs, spends refresh tokens once, accepts only the current access token. The refresh
    endpoint is slow on purpose, so racing refreshes would overlap if the client let them."""

    def __init__(self, server, expires_in=900):
        self.server = server
        self.expires_in = expires_in
        self.counter = itertools.count(1)
        self.access: set[str] = set()
        self.refresh: str | None = None
        self.refresh_delay = 0.1
        self.lock = threading.Lock()
        route = server.route
        route("POST", PREFIX + "login")(self._login)
        route("POST", PREFIX + "refresh")(self._refresh)
        route("POST", PREFIX + "logout")(self._logout)
        route("GET", PREFIX + "me")(self._me)
        route("GET", PREFIX + "sessions/active")(self._sessions)
        route("GET", "/api/thing")(self._thing)
        route("POST", "/api/thing")(self._thing)

    def _pair(self):
        n = next(self.counter)
        self.access = {f"access-{n}"}
        self.refresh = f"refresh-{n}"
        return {"accessToken": f"access-{n}", "refreshToken": f"refresh-{n}", "tokenType": "Bearer",
                "expiresIn": self.expires_in, "refreshExpiresAt": "2030-01-01T00:00:00Z",
                "user": {"id": "u1", "email": "a@example.com"}, "session": {"id": "s1"}}

    def _login(self, handler, body):
        if body.get("password") != "pw-123456789012":
            return 401, {}, {"error": {"code": "invalid_credentials", "message": "Wrong email or password."}}
        self.login_body = body
        return 200, {"Cache-Control": "no-store"}, self._pair()

    def _refresh(self, handler, body):
        time.sleep(self.refresh_delay)
        with self.lock:
            if body.get("refreshToken") != self.refresh:
                self.access, self.refresh = set(), None
                return 401, {}, {"error": {"code": "refresh_token_reused", "message": "Sign in again."}}
            return 200, {}, self._pair()

    def _authed(self, handler) -> bool:
        return handler.headers.get("Authorization", "").removeprefix("Bearer ") in self.access

    def _logout(self, handler, body):
        if not self._authed(handler):
            return 401, {}, {"error": {"code": "invalid_token", "message": "no"}}
        self.access, self.refresh = set(), None
        return 204, {}, None

    def _me(self, handler, body):
        if not self._authed(handler):
            return 401, {}, {"error": {"code": "invalid_token", "message": "no"}}
        return 200, {}, {"id": "u1", "email": "a@example.com"}

    def _sessions(self, handler, body):
        if not self._authed(handler):
            return 401, {}, {"error": {"code": "invalid_token", "message": "no"}}
        return 200, {}, {"sessions": [{"id": "s1", "current": True}]}

    def _thing(self, handler, body):
        if not self._authed(handler):
            return 401, {}, {"error": {"code": "invalid_token", "message": "no"}}
        return 200, {}, {"ok": True, "echo": body}

    def hits(self, path):
        return self.server.hits.get(path, 0)

    @property
    def refreshes(self):
        return self.hits(PREFIX + "refresh")


@pytest.fixture
def provider(server):
    return FakeAuthProvider(server)


@pytest.fixture
def client(server, clock_wall):
    return Client(server.url, clock=clock_wall)


@pytest.fixture
def clock_wall():
    from tests.support.mana_auth import FakeClock

    return FakeClock(start=time.time())


def test_login_keeps_the_pair_and_requests_carry_the_bearer(client, provider, server):
    pair = client.login("a@example.com", "pw-123456789012", remember_me=True, device_id="d-1", device_name="CLI")
    assert pair["user"]["email"] == "a@example.com"
    assert provider.login_body == {"email": "a@example.com", "password": "pw-123456789012", "rememberMe": True,
                                   "deviceId": "d-1", "deviceName": "CLI"}
    assert client.tokens["accessToken"] == "access-1"
    response = client.request("POST", "/api/thing", json={"x": 1})
    assert response.status == 200 and response.json() == {"ok": True, "echo": {"x": 1}}
    assert server.requests[-1][2]["Authorization"] == "Bearer access-1"
    assert client.me() == {"id": "u1", "email": "a@example.com"}
    assert client.sessions() == [{"id": "s1", "current": True}]
    assert provider.refreshes == 0


def test_login_body_omits_unset_device(client, provider):
    client.login("a@example.com", "pw-123456789012")
    assert provider.login_body == {"email": "a@example.com", "password": "pw-123456789012", "rememberMe": False}


def test_login_failure_raises_api_error_with_the_envelope(client, provider):
    with pytest.raises(ApiError) as caught:
        client.login("a@example.com", "wrong")
    assert (caught.value.status, caught.value.code) == (401, "invalid_credentials")
    assert client.tokens is None


def test_refreshes_shortly_before_expiry(client, provider, clock_wall):
    client.login("a@example.com", "pw-123456789012")
    clock_wall.advance(900 - 61)
    assert client.request("GET", "/api/thing").status == 200
    assert provider.refreshes == 0
    clock_wall.advance(2)  # now within the 60 s margin
    assert client.request("GET", "/api/thing").status == 200
    assert provider.refreshes == 1
    assert provider.hits("/api/thing") == 2  # refreshed first: no 401 round trip
    assert client.tokens["accessToken"] == "access-2"


def test_many_threads_share_one_refresh(client, provider, clock_wall):
    client.login("a@example.com", "pw-123456789012")
    clock_wall.advance(900)  # expired for everyone at once
    statuses = race(*[lambda: client.request("GET", "/api/thing").status] * 24)
    assert statuses == [200] * 24
    assert provider.refreshes == 1
    assert client.refresh_count == 1


def test_many_threads_hit_by_401_share_one_refresh(client, provider):
    client.login("a@example.com", "pw-123456789012")
    provider.access = set()  # the resource server stops accepting the (unexpired) access token
    statuses = race(*[lambda: client.request("GET", "/api/thing").status] * 16)
    assert statuses == [200] * 16
    assert provider.refreshes == 1


def test_retries_once_after_401(client, provider):
    client.login("a@example.com", "pw-123456789012")
    provider.access = set()
    assert client.request("GET", "/api/thing").status == 200
    assert provider.hits("/api/thing") == 2 and provider.refreshes == 1


def test_only_one_retry_when_the_401_persists(client, provider, server):
    client.login("a@example.com", "pw-123456789012")
    server.route("GET", "/api/never")(lambda h, b: (401, {}, {"error": {"code": "invalid_token", "message": "x"}}))
    response = client.request("GET", "/api/never")
    assert response.status == 401
    assert provider.hits("/api/never") == 2 and provider.refreshes == 1


def test_refused_refresh_means_log_in_again(client, provider):
    client.login("a@example.com", "pw-123456789012")
    provider.refresh = "someone-else-spent-it"
    with pytest.raises(NotLoggedIn) as caught:
        client.refresh()
    assert caught.value.code == "refresh_token_reused"
    assert client.tokens is None and client.storage.load() is None
    with pytest.raises(NotLoggedIn):
        client.request("GET", "/api/thing")


def test_explicit_refresh_replaces_the_pair(client, provider):
    client.login("a@example.com", "pw-123456789012")
    pair = client.refresh()
    assert pair["accessToken"] == "access-2" and client.storage.load()["refreshToken"] == "refresh-2"


def test_logout_ends_the_session_and_forgets_the_pair(client, provider):
    client.login("a@example.com", "pw-123456789012")
    client.logout()
    assert provider.hits(PREFIX + "logout") == 1 and provider.access == set()
    assert client.tokens is None
    with pytest.raises(NotLoggedIn):
        client.me()
    client.logout()  # logging out twice is harmless


def test_request_without_login_raises_not_logged_in(client, provider):
    with pytest.raises(NotLoggedIn):
        client.request("GET", "/api/thing")
    assert client.request("GET", "/api/thing", auth=False).status == 401  # explicit anonymous call


def test_absolute_urls_are_used_as_given(client, provider, server):
    client.login("a@example.com", "pw-123456789012")
    assert client.request("GET", server.url + "/api/thing").status == 200


def test_redirects_are_not_followed_with_the_token(client, provider, server):
    client.login("a@example.com", "pw-123456789012")
    server.route("GET", "/api/moved")(lambda h, b: (302, {"Location": server.url + "/api/elsewhere"}, None))
    response = client.request("GET", "/api/moved")
    assert response.status == 302
    assert provider.hits("/api/elsewhere") == 0


def test_unreachable_provider_raises_transport_error(provider, server):
    from mana_auth import TransportError

    client = Client(server.url, timeout=1)
    server.stop()
    with pytest.raises(TransportError):
        client.login("a@example.com", "pw-123456789012")


# --- asyncio --------------------------------------------------------------------------------------

def test_async_client_shares_one_refresh_between_tasks(provider, server, clock_wall):
    async def scenario():
        client = AsyncClient(server.url, clock=clock_wall)
        await client.login("a@example.com", "pw-123456789012")
        clock_wall.advance(900)
        responses = await asyncio.gather(*(client.request("GET", "/api/thing") for _ in range(20)))
        assert [r.status for r in responses] == [200] * 20
        assert await client.me() == {"id": "u1", "email": "a@example.com"}
        assert len(await client.sessions()) == 1
        provider.access = set()
        responses = await asyncio.gather(*(client.request("GET", "/api/thing") for _ in range(10)))
        assert [r.status for r in responses] == [200] * 10
        await client.logout()
        assert client.tokens is None
        return client

    client = asyncio.run(scenario())
    assert provider.refreshes == 2 and client.refresh_count == 2


# --- storages -------------------------------------------------------------------------------------

def test_file_storage_is_owner_only_and_atomic(tmp_path, provider, server):
    path = tmp_path / "nested" / "tokens.json"
    old_umask = os.umask(0)  # even a permissive umask must not widen the file
    try:
        client = Client(server.url, storage=FileStorage(path))
        client.login("a@example.com", "pw-123456789012")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["tokens.json"]  # no temporary file left behind
    client.refresh()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A new process (here: a new client) picks the pair up from the file.
    again = Client(server.url, storage=FileStorage(path))
    assert again.request("GET", "/api/thing").status == 200
    again.logout()
    assert not path.exists()


def test_file_storage_replaces_with_rename_not_in_place(tmp_path, monkeypatch):
    storage = FileStorage(tmp_path / "t.json")
    storage.save({"a": 1})
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renames.append((src, dst)), real_replace(src, dst)))
    storage.save({"a": 2})
    assert len(renames) == 1 and str(renames[0][1]) == str(tmp_path / "t.json")
    assert storage.load() == {"a": 2}


def test_file_storage_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    storage = FileStorage(tmp_path / "t.json")
    storage.save({"a": 1})
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        storage.save({"a": 2})
    assert storage.load() == {"a": 1}
    assert os.listdir(tmp_path) == ["t.json"]


def test_file_storage_corrupt_file_reads_as_logged_out(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{broken")
    assert FileStorage(path).load() is None


def test_memory_storage_returns_copies():
    storage = MemoryStorage()
    storage.save({"a": 1})
    storage.load()["a"] = 2
    assert storage.load() == {"a": 1}
    storage.clear()
    assert storage.load() is None


def test_keyring_storage_round_trip():
    keyring = pytest.importorskip("keyring")
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1
        store = {}

        def get_password(self, service, username):
            return self.store.get((service, username))

        def set_password(self, service, username, password):
            self.store[(service, username)] = password

        def delete_password(self, service, username):
            self.store.pop((service, username), None)

    keyring.set_keyring(Memory())
    storage = KeyringStorage(service="mana-test", username="me")
    storage.save({"accessToken": "a"})
    assert storage.load() == {"accessToken": "a"}
    storage.clear()
    assert storage.load() is None


def test_keyring_storage_without_keyring_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "keyring", None)
    with pytest.raises(ImportError, match="pip install keyring"):
        KeyringStorage()


@pytest.mark.parametrize("stored", [{"accessToken": "a"}, {"accessToken": 1, "refreshToken": "r"}, {}])
def test_unusable_stored_pair_reads_as_logged_out(server, stored):
    storage = MemoryStorage()
    storage.save(stored)
    with pytest.raises(NotLoggedIn):
        Client(server.url, storage=storage).access_token()
