"""Client SDK for apps and scripts: log in, keep the token pair, call APIs with a fresh access token.

``Client`` is thread-safe: when several threads find the access token about to expire (or rejected
with 401) at the same moment, exactly one of them refreshes and the others wait and use its result
(a lock plus a re-check of which token they saw). ``AsyncClient`` does the same for asyncio tasks with
an ``asyncio.Lock``; its HTTP calls run the standard-library transport in a worker thread
(``asyncio.to_thread``), so the package needs no async HTTP dependency.

The access token goes only to the origin of ``base_url`` (scheme, host and port), plus the origins the
caller lists in ``token_origins``: ``request`` refuses (``ValueError``) to attach it to a URL of any other
origin, before anything is sent, and redirects are never followed (``_http``), so a 3xx pointing
elsewhere is returned, not obeyed.
"""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import urlsplit

from mana_auth import _clock, _http
from mana_auth.errors import ApiError, NotLoggedIn
from mana_auth.storage import MemoryStorage

AUTH_PREFIX = "/api/v1/auth/"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL, lower-cased and with the default port filled in;
    ValueError for anything else (no host, a port that is not a number)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    return scheme, parts.hostname.lower(), parts.port or _DEFAULT_PORTS[scheme]


def _is_absolute(path: str) -> bool:
    return urlsplit(path).scheme.lower() in _DEFAULT_PORTS


class _ClientBase:
    def __init__(self, base_url: str, storage=None, *, refresh_margin: float = 60.0, timeout: float = 10.0,
                 clock=None, token_origins=()):
        self.base_url = _http.check_url(base_url.rstrip("/"), "base_url")
        self.storage = storage if storage is not None else MemoryStorage()
        self.refresh_margin = refresh_margin
        self.timeout = timeout
        self._clock = clock if clock is not None else _clock.wall  # read at call time (test clocks)
        self._tokens: dict | None = None
        self._loaded = False
        if isinstance(token_origins, str):
            token_origins = [token_origins]
        self.token_origins = frozenset([origin_of(self.base_url)]
                                       + [origin_of(_http.check_url(url, "token_origins")) for url in token_origins])

    # --- token state ---------------------------------------------------------------------------
    @property
    def tokens(self) -> dict | None:
        """The stored pair: accessToken, refreshToken, expiresAt (Unix time), refreshExpiresAt, user, session."""
        if not self._loaded:
            stored = self.storage.load()
            usable = isinstance(stored, dict) and all(
                isinstance(stored.get(name), str) for name in ("accessToken", "refreshToken"))
            self._tokens = stored if usable else None
            self._loaded = True
        return self._tokens

    def _fresh_access(self) -> str | None:
        tokens = self.tokens
        if tokens and tokens.get("expiresAt", 0) - self.refresh_margin > self._clock():
            return tokens["accessToken"]
        return None

    def _keep(self, pair: dict) -> dict:
        tokens = {
            "accessToken": pair["accessToken"],
            "refreshToken": pair["refreshToken"],
            "expiresAt": self._clock() + float(pair.get("expiresIn") or 0),
            "refreshExpiresAt": pair.get("refreshExpiresAt"),
            "user": pair.get("user"),
            "session": pair.get("session"),
        }
        self.storage.save(tokens)
        self._tokens, self._loaded = tokens, True
        return tokens

    def _forget(self) -> None:
        self.storage.clear()
        self._tokens, self._loaded = None, True

    # --- request building ----------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if _is_absolute(path):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _bearer_url(self, path: str) -> str:
        """The URL for an authenticated request: only on base_url's origin or one in token_origins."""
        url = self._url(path)
        try:
            origin = origin_of(url)
        except ValueError:
            origin = None
        if origin not in self.token_origins:
            shown = f"{origin[0]}://{origin[1]}:{origin[2]}" if origin else "that URL"
            raise ValueError(f"the access token is only sent to {self.base_url}'s origin and token_origins, not to "
                             f"{shown}: pass auth=False for an anonymous call, or list the origin in "
                             "Client(..., token_origins=[...])")
        return url

    @staticmethod
    def _login_body(email, password, remember_me, device_id, device_name) -> dict:
        body = {"email": email, "password": password, "rememberMe": bool(remember_me)}
        if device_id is not None:
            body["deviceId"] = device_id
        if device_name is not None:
            body["deviceName"] = device_name
        return body

    @staticmethod
    def _pair(response: _http.Response) -> dict:
        body = response.json()
        if response.status != 200 or not isinstance(body, dict) or "accessToken" not in body:
            raise ApiError(response.status, *response.error())
        return body

    @staticmethod
    def _raise_for(response: _http.Response) -> None:
        if not response.ok:
            raise ApiError(response.status, *response.error())

    def _refresh_refused(self, response: _http.Response) -> NotLoggedIn:
        code, message, _ = response.error()
        self._forget()
        return NotLoggedIn(f"the refresh token was refused ({code}): log in again", code=code)


class Client(_ClientBase):
    """``Client(base_url, storage=MemoryStorage())`` for the provider at ``base_url``.

    ``request(method, path_or_url, json=None)`` attaches the access token (refreshing it first when it
    expires within ``refresh_margin`` seconds) and, after a 401, refreshes once and retries once. The token
    goes only to base_url's origin and to the origins in ``token_origins`` (e.g. the platform's resource
    servers); a URL of another origin raises ValueError unless ``auth=False``.
    Convenience calls (``login``, ``me``, ``sessions``...) raise ``ApiError`` for error answers;
    ``request`` returns every answer as a ``Response``. ``NotLoggedIn`` means: log in again.
    """

    def __init__(self, base_url: str, storage=None, **options):
        super().__init__(base_url, storage, **options)
        self._lock = threading.Lock()
        self.refresh_count = 0

    def _send(self, method, url, **kwargs) -> _http.Response:
        return _http.send(method, url, timeout=self.timeout, **kwargs)

    def login(self, email: str, password: str, remember_me: bool = False, device_id: str | None = None,
              device_name: str | None = None) -> dict:
        """Log in; keeps the pair and returns the provider's TokenPair (with ``user`` and ``session``)."""
        body = self._login_body(email, password, remember_me, device_id, device_name)
        pair = self._pair(self._send("POST", self._url(AUTH_PREFIX + "login"), json=body))
        self._keep(pair)
        return pair

    def access_token(self) -> str:
        """A valid access token, refreshed first if it expires within ``refresh_margin`` seconds."""
        token = self._fresh_access()
        if token is not None:
            return token
        tokens = self.tokens
        if not tokens:
            raise NotLoggedIn("log in first")
        return self._refresh_shared(tokens["accessToken"])

    def refresh(self) -> dict:
        """Spend the refresh token now for a new pair (the old refresh token is spent)."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_shared(self, seen: str | None) -> str:
        """Single flight: the first thread refreshes; threads that saw the same old token wait on the
        lock and then find a newer token than the one they saw, and use it."""
        with self._lock:
            tokens = self.tokens
            if tokens and tokens["accessToken"] != seen and self._fresh_access():
                return tokens["accessToken"]
            return self._refresh_locked()["accessToken"]

    def _refresh_locked(self) -> dict:
        tokens = self.tokens
        if not tokens:
            raise NotLoggedIn("log in first")
        self.refresh_count += 1
        response = self._send("POST", self._url(AUTH_PREFIX + "refresh"), json={"refreshToken": tokens["refreshToken"]})
        if response.status in (400, 401):
            raise self._refresh_refused(response)
        return self._keep(self._pair(response))

    def request(self, method: str, path: str, json=None, *, headers: dict | None = None,
                auth: bool = True) -> _http.Response:
        if not auth:
            return self._send(method, self._url(path), json=json, headers=headers)
        url = self._bearer_url(path)
        token = self.access_token()
        response = self._send(method, url, json=json, headers={**(headers or {}), "Authorization": f"Bearer {token}"})
        if response.status == 401:
            token = self._refresh_shared(token)
            response = self._send(method, url, json=json,
                                  headers={**(headers or {}), "Authorization": f"Bearer {token}"})
        return response

    def logout(self) -> None:
        """End this session at the provider and forget the pair (also when the session had already ended)."""
        try:
            response = self.request("POST", AUTH_PREFIX + "logout")
        except NotLoggedIn:
            self._forget()
            return
        self._forget()
        if response.status != 401:
            self._raise_for(response)

    def me(self) -> dict:
        response = self.request("GET", AUTH_PREFIX + "me")
        self._raise_for(response)
        return response.json()

    def sessions(self) -> list[dict]:
        """This user's active sessions (``current`` marks this one)."""
        response = self.request("GET", AUTH_PREFIX + "sessions/active")
        self._raise_for(response)
        return response.json()["sessions"]


class AsyncClient(_ClientBase):
    """The asyncio twin of ``Client``: the same methods as coroutines, one refresh shared by every task
    that needs it (``asyncio.Lock``). Use one instance per event loop."""

    def __init__(self, base_url: str, storage=None, **options):
        super().__init__(base_url, storage, **options)
        self._lock = asyncio.Lock()
        self.refresh_count = 0

    async def _send(self, method, url, **kwargs) -> _http.Response:
        return await asyncio.to_thread(_http.send, method, url, timeout=self.timeout, **kwargs)

    async def login(self, email: str, password: str, remember_me: bool = False, device_id: str | None = None,
                    device_name: str | None = None) -> dict:
        body = self._login_body(email, password, remember_me, device_id, device_name)
        pair = self._pair(await self._send("POST", self._url(AUTH_PREFIX + "login"), json=body))
        self._keep(pair)
        return pair

    async def access_token(self) -> str:
        token = self._fresh_access()
        if token is not None:
            return token
        tokens = self.tokens
        if not tokens:
            raise NotLoggedIn("log in first")
        return await self._refresh_shared(tokens["accessToken"])

    async def refresh(self) -> dict:
        async with self._lock:
            return await self._refresh_locked()

    async def _refresh_shared(self, seen: str | None) -> str:
        async with self._lock:
            tokens = self.tokens
            if tokens and tokens["accessToken"] != seen and self._fresh_access():
                return tokens["accessToken"]
            return (await self._refresh_locked())["accessToken"]

    async def _refresh_locked(self) -> dict:
        tokens = self.tokens
        if not tokens:
            raise NotLoggedIn("log in first")
        self.refresh_count += 1
        response = await self._send("POST", self._url(AUTH_PREFIX + "refresh"),
                                    json={"refreshToken": tokens["refreshToken"]})
        if response.status in (400, 401):
            raise self._refresh_refused(response)
        return self._keep(self._pair(response))

    async def request(self, method: str, path: str, json=None, *, headers: dict | None = None,
                      auth: bool = True) -> _http.Response:
        if not auth:
            return await self._send(method, self._url(path), json=json, headers=headers)
        url = self._bearer_url(path)
        token = await self.access_token()
        response = await self._send(method, url, json=json,
                                    headers={**(headers or {}), "Authorization": f"Bearer {token}"})
        if response.status == 401:
            token = await self._refresh_shared(token)
            response = await self._send(method, url, json=json,
                                        headers={**(headers or {}), "Authorization": f"Bearer {token}"})
        return response

    async def logout(self) -> None:
        try:
            response = await self.request("POST", AUTH_PREFIX + "logout")
        except NotLoggedIn:
            self._forget()
            return
        self._forget()
        if response.status != 401:
            self._raise_for(response)

    async def me(self) -> dict:
        response = await self.request("GET", AUTH_PREFIX + "me")
        self._raise_for(response)
        return response.json()

    async def sessions(self) -> list[dict]:
        response = await self.request("GET", AUTH_PREFIX + "sessions/active")
        self._raise_for(response)
        return response.json()["sessions"]
