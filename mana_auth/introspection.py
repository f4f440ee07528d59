"""Optional revocation check: ask the provider whether a token's session is still alive.

The provider's ``POST /api/v1/auth/introspect {"token": ...}`` (RFC 7662 style) answers
``{"active": true|false, ...claims}`` to a caller authenticated with a *service* access token. The
``Introspector`` gets that token with client credentials (``POST /api/v1/auth/service-token``) and
keeps it until shortly before it expires, or takes it from a ``token_provider`` callable.
Answers are cached for ``cache_seconds`` (default 10): per ``jti``, and a revoked session per ``sid``
(every token of that session is refused without another call).
"""

from __future__ import annotations

import hashlib
import threading

from mana_auth import _clock, _http
from mana_auth.errors import InvalidToken, ProviderUnavailable, TransportError

MAX_CACHE_ENTRIES = 10_000


class ServiceTokenSource:
    """A service access token from client credentials, fetched once and reused until ``margin``
    seconds before it expires; one fetch at a time (threads waiting for it share the result)."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, *, margin: float = 60.0,
                 timeout: float = 5.0, clock=None):
        self.token_url = _http.check_url(token_url, "token_url")
        self.client_id = client_id
        self.client_secret = client_secret
        self.margin = margin
        self.timeout = timeout
        self._clock = clock if clock is not None else _clock.wall  # read at call time (test clocks)
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None
        self.fetch_count = 0

    def __call__(self, *, force: bool = False) -> str:
        cached = self._token
        if cached is not None and not force and cached[1] > self._clock():
            return cached[0]
        with self._lock:
            if self._token is not None and self._token is not cached and self._token[1] > self._clock():
                return self._token[0]  # another thread fetched while we waited
            self.fetch_count += 1
            response = _http.send("POST", self.token_url, timeout=self.timeout,
                                  json={"clientId": self.client_id, "clientSecret": self.client_secret})
            body = response.json()
            if response.status != 200 or not isinstance(body, dict) or not isinstance(body.get("accessToken"), str):
                code, message, _ = response.error()
                raise ProviderUnavailable("introspection_unavailable",
                                          f"service token request failed: {response.status} {code} {message}")
            expires_in = body.get("expiresIn")
            lifetime = float(expires_in) if isinstance(expires_in, (int, float)) else 300.0
            self._token = (body["accessToken"], self._clock() + max(lifetime - self.margin, lifetime / 2))
            return self._token[0]


class Introspector:
    """``Introspector(url, client_id, client_secret)``, or ``Introspector(url, token_provider=...)`` with
    a fixed service bearer token (a string) or a callable returning one."""

    def __init__(self, url: str, client_id: str | None = None, client_secret: str | None = None, *,
                 token_provider=None, token_url: str | None = None, cache_seconds: float = 10.0,
                 timeout: float = 5.0, clock=None):
        self.url = _http.check_url(url, "introspection url")
        if token_provider is None:
            if not (client_id and client_secret):
                raise ValueError("Introspector needs client_id and client_secret, or token_provider")
            if token_url is None:
                base, _, last = url.rstrip("/").rpartition("/")
                token_url = f"{base}/service-token" if last == "introspect" else None
            if token_url is None:
                raise ValueError("token_url is required when url does not end in /introspect")
            token_provider = ServiceTokenSource(token_url, client_id, client_secret, timeout=timeout)
        self.token_provider = token_provider
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._clock = clock if clock is not None else _clock.monotonic
        self._lock = threading.Lock()
        self._by_jti: dict[str, tuple[bool, float]] = {}
        self._revoked_sid: dict[str, float] = {}
        self.call_count = 0

    def ensure_active(self, principal) -> None:
        """Raise InvalidToken("revoked") unless the provider says the token is active."""
        if not self.is_active(principal.token, jti=principal.jti, sid=principal.session_id):
            raise InvalidToken("revoked")

    def is_active(self, token: str, *, jti: str | None = None, sid: str | None = None) -> bool:
        now = self._clock()
        jti = jti or hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            if sid is not None and self._revoked_sid.get(sid, 0) > now:
                return False
            cached = self._by_jti.get(jti)
            if cached is not None and cached[1] > now:
                return cached[0]
        active = self._ask(token)
        with self._lock:
            if len(self._by_jti) >= MAX_CACHE_ENTRIES:
                self._prune(now)
            until = now + self.cache_seconds
            self._by_jti[jti] = (active, until)
            if not active and sid is not None:
                self._revoked_sid[sid] = until
        return active

    def _prune(self, now: float) -> None:
        self._by_jti = {k: v for k, v in self._by_jti.items() if v[1] > now}
        self._revoked_sid = {k: v for k, v in self._revoked_sid.items() if v > now}
        if len(self._by_jti) >= MAX_CACHE_ENTRIES:
            self._by_jti.clear()

    def _ask(self, token: str) -> bool:
        self.call_count += 1
        for attempt in (1, 2):
            service_token = self._service_token(force=attempt == 2)
            try:
                response = _http.send("POST", self.url, json={"token": token}, timeout=self.timeout,
                                      headers={"Authorization": f"Bearer {service_token}"})
            except TransportError as exc:
                raise ProviderUnavailable("introspection_unavailable", str(exc)) from exc
            if response.status == 401 and attempt == 1:
                continue  # our service token expired or was revoked: get a new one, once
            body = response.json()
            if response.status == 200 and isinstance(body, dict) and isinstance(body.get("active"), bool):
                return body["active"]
            break
        raise ProviderUnavailable("introspection_unavailable", f"introspection answered {response.status}")

    def _service_token(self, *, force: bool) -> str:
        provider = self.token_provider
        try:
            if isinstance(provider, str):
                return provider
            if isinstance(provider, ServiceTokenSource):
                return provider(force=force)
            return provider()
        except TransportError as exc:
            raise ProviderUnavailable("introspection_unavailable", str(exc)) from exc
