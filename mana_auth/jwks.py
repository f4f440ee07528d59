"""The JWKS cache: Ed25519 verification keys of the provider, imported once and kept in memory.

- Fetched on first use and kept for the ``Cache-Control: max-age`` of the answer (clamped to
  ``[min_ttl, max_ttl]``; ``default_ttl`` when the header says nothing).
- A ``kid`` it does not know triggers one refetch, but at most one fetch per ``refetch_interval``
  seconds in the whole process, so a flood of tokens with forged kids cannot hammer the provider.
- When the provider does not answer (or answers garbage), the last good key set is served stale for up
  to ``max_stale`` seconds past its freshness; later verification fails with ``jwks_unavailable``.
- Thread-safe: readers take an immutable snapshot without locking; one lock serializes fetches and
  a thread that waited for it re-checks before fetching again.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field

from joserfc.jwk import OKPKey

from mana_auth import _clock, _http
from mana_auth.errors import InvalidToken, ProviderUnavailable, TransportError

logger = logging.getLogger("mana_auth")

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)


@dataclass(frozen=True)
class _KeySet:
    keys: dict = field(default_factory=dict)  # kid -> OKPKey
    fresh_until: float = 0.0  # monotonic
    fetched: bool = False


def keys_from_jwks(document) -> dict:
    """{kid: OKPKey} for the usable keys of a JWKS: OKP/Ed25519 signature keys with a kid, imported
    from their public ``x`` only. Anything else (RSA, EC, ``oct``/HMAC, Ed448, encryption keys) is
    skipped, so no token can ever be checked with a key of another type."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid, x = entry.get("kid"), entry.get("x")
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519" or not isinstance(kid, str) or not kid:
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "EdDSA") not in ("EdDSA", "Ed25519"):
            continue
        if not isinstance(x, str):
            continue
        try:
            keys[kid] = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": x})
        except Exception:  # joserfc raises assorted errors for a malformed x
            logger.warning("mana_auth: skipping malformed JWKS key %r", kid)
    return keys


class JwksCache:
    def __init__(self, url: str, *, default_ttl: float = 300.0, min_ttl: float = 5.0, max_ttl: float = 86400.0,
                 refetch_interval: float = 5.0, max_stale: float = 3600.0, timeout: float = 5.0,
                 clock=None):
        self.url = _http.check_url(url, "jwks_url")
        self.default_ttl = default_ttl
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.refetch_interval = refetch_interval
        self.max_stale = max_stale
        self.timeout = timeout
        self._clock = clock if clock is not None else _clock.monotonic
        self._state = _KeySet()
        self._lock = threading.Lock()
        self._last_attempt: float | None = None
        self.fetch_count = 0  # attempts, for metrics and tests

    def get(self, kid: str) -> OKPKey:
        """The key for ``kid``; raises InvalidToken (``unknown_kid``) or ProviderUnavailable."""
        state = self._state
        now = self._clock()
        if now < state.fresh_until:
            key = state.keys.get(kid)
            if key is not None:
                return key
            # Fresh set, unknown kid: maybe a key rotated in since; one refetch, rate-limited.
            state = self._refresh(now, unknown_kid=kid)
        else:
            state = self._refresh(now, unknown_kid=None)
        key = state.keys.get(kid)
        if key is None:
            raise InvalidToken("unknown_kid")
        return key

    def _refresh(self, now: float, *, unknown_kid: str | None) -> _KeySet:
        with self._lock:
            state = self._state
            now = self._clock()
            if unknown_kid is not None:
                if unknown_kid in state.keys and now < state.fresh_until:
                    return state  # another thread's fetch brought it in meanwhile
            elif now < state.fresh_until:
                return state  # another thread refreshed while we waited for the lock
            if self._last_attempt is not None and now - self._last_attempt < self.refetch_interval:
                return self._usable_or_raise(state, now)
            self._last_attempt = now
            self.fetch_count += 1
            try:
                keys, ttl = self._fetch()
            except (TransportError, ValueError) as exc:
                logger.warning("mana_auth: JWKS fetch from %s failed: %s", self.url, exc)
                return self._usable_or_raise(state, now)
            state = _KeySet(keys=keys, fresh_until=self._clock() + ttl, fetched=True)
            self._state = state
            return state

    def _usable_or_raise(self, state: _KeySet, now: float) -> _KeySet:
        """The current set while it is fresh or within max_stale of freshness; else the provider is down."""
        if state.fetched and now < state.fresh_until + self.max_stale:
            return state
        raise ProviderUnavailable("jwks_unavailable", "The identity provider's JWKS could not be fetched.")

    def _fetch(self) -> tuple[dict, float]:
        response = _http.send("GET", self.url, timeout=self.timeout)
        if response.status != 200:
            raise ValueError(f"status {response.status}")
        keys = keys_from_jwks(response.json())
        return keys, self._ttl(response.headers.get("cache-control", ""))

    def _ttl(self, cache_control: str) -> float:
        if _NO_CACHE.search(cache_control):
            return self.min_ttl
        match = _MAX_AGE.search(cache_control)
        ttl = float(match.group(1)) if match else self.default_ttl
        return max(self.min_ttl, min(self.max_ttl, ttl))

    def clear(self) -> None:
        """Forget every key and the fetch rate limit (tests, or after a known key compromise)."""
        with self._lock:
            self._state = _KeySet()
            self._last_attempt = None
