"""mana_auth.Client sends the access token only to its own origin (and to origins it was told to trust):
absolute URLs and redirects to another origin never carry ``Authorization``."""

from __future__ import annotations

import asyncio

import pytest

from mana_auth import AsyncClient, Client
from tests.mana_auth.conftest import FakeServer
from tests.mana_auth.test_client import FakeAuthProvider

PASSWORD = "pw-123456789012"


@pytest.fixture
def other():
    """Another origin (another port on 127.0.0.1) that records what it receives."""
    fake = FakeServer()
    for method in ("GET", "POST"):
        fake.route(method, "/collect")(lambda handler, body: (200, {}, {"ok": True}))
    yield fake
    fake.stop()


@pytest.fixture
def provider(server):
    return FakeAuthProvider(server)


def authorizations(fake: FakeServer) -> list:
    return [headers.get("Authorization") for _, _, headers, _ in fake.requests]


def signed_in(server, **options) -> Client:
    client = Client(server.url, **options)
    client.login("a@example.com", PASSWORD)
    return client


def port_of(fake: FakeServer) -> int:
    return fake.httpd.server_port


def test_a_url_of_another_origin_gets_no_token(provider, server, other):
    client = signed_in(server)
    for url in [other.url + "/collect",
                f"HTTP://127.0.0.1:{port_of(other)}/collect",  # the scheme in capitals is still a URL
                f"http://localhost:{port_of(other)}/collect",  # another host name for the same socket
                f"{server.url}@127.0.0.1:{port_of(other)}/collect",  # the provider's origin as userinfo
                f"https://127.0.0.1:{port_of(server)}/api/thing"]:  # the provider's port, another scheme
        with pytest.raises(ValueError, match="only sent to"):
            client.request("GET", url)
    assert other.requests == [] and provider.hits("/api/thing") == 0
    # An anonymous call is allowed, and carries nothing.
    assert client.request("POST", other.url + "/collect", json={"x": 1}, auth=False).status == 200
    assert authorizations(other) == [None]


def test_the_token_still_goes_to_its_own_origin_however_written(provider, server, other):
    client = signed_in(server)
    token = client.tokens["accessToken"]
    assert client.request("GET", server.url + "/api/thing").status == 200
    assert client.request("GET", f"HTTP://127.0.0.1:{port_of(server)}/api/thing").status == 200
    assert client.request("GET", "/api/thing").status == 200
    # "//host/path" is a path on the base URL here, never another host.
    assert client.request("GET", f"//127.0.0.1:{port_of(other)}/collect").status == 404
    assert other.requests == []
    assert [h.get("Authorization") for _, path, h, _ in server.requests if path == "/api/thing"] == \
        [f"Bearer {token}"] * 3


def test_origins_listed_in_token_origins_get_the_token(provider, server, other):
    client = signed_in(server, token_origins=[other.url + "/any/path"])
    token = client.tokens["accessToken"]
    assert client.request("GET", other.url + "/collect").status == 200
    assert authorizations(other) == [f"Bearer {token}"]
    port = port_of(other)
    with pytest.raises(ValueError):  # the same host on another port is another origin
        client.request("GET", f"http://127.0.0.1:{port - 1 if port > 1024 else port + 1}/collect")
    with pytest.raises(ValueError):
        Client(server.url, token_origins=["ftp://files.example.com"])


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_is_returned_not_followed(provider, server, other, status):
    client = signed_in(server)
    server.route("GET", "/api/moved")(lambda h, b: (status, {"Location": other.url + "/collect"}, None))
    response = client.request("GET", "/api/moved")
    assert response.status == status and response.headers["location"] == other.url + "/collect"
    assert other.requests == []


def test_a_401_retry_never_goes_elsewhere(provider, server, other):
    client = signed_in(server)

    def moved(handler, body):
        if not provider._authed(handler):
            return 401, {}, {"error": {"code": "invalid_token", "message": "no"}}
        return 302, {"Location": other.url + "/collect"}, None

    server.route("GET", "/api/moved")(moved)
    provider.access = set()  # the next call is refused: refresh, retry, on the same origin only
    assert client.request("GET", "/api/moved").status == 302
    assert provider.refreshes == 1
    with pytest.raises(ValueError):
        client.request("GET", other.url + "/collect")
    assert other.requests == []


def test_async_client_keeps_the_token_home_too(provider, server, other):
    async def scenario():
        client = AsyncClient(server.url)
        await client.login("a@example.com", PASSWORD)
        with pytest.raises(ValueError, match="only sent to"):
            await client.request("GET", other.url + "/collect")
        server.route("GET", "/api/moved")(lambda h, b: (307, {"Location": other.url + "/collect"}, None))
        assert (await client.request("GET", "/api/moved")).status == 307
        assert (await client.request("GET", other.url + "/collect", auth=False)).status == 200
        listed = AsyncClient(server.url, token_origins=[other.url])
        await listed.login("a@example.com", PASSWORD)
        assert (await listed.request("GET", other.url + "/collect")).status == 200
        return listed.tokens["accessToken"]

    token = asyncio.run(scenario())
    assert authorizations(other) == [None, f"Bearer {token}"]
