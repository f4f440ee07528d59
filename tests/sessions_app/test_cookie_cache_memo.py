"""The memo of decrypted cookie-cache snapshots (sessions_app/cookie_cache.py ``_PlaintextMemo``, issue 16):
each snapshot is decrypted once per process, an entry goes when its snapshot can no longer be fresh
(the cookie-cache TTL after it was first seen), and there are never more than ``maxsize``, so a
worker's memo stays at the snapshots of the last TTL instead of climbing to its bound."""

from __future__ import annotations

import pytest
from joserfc.errors import JoseError

from core.crypto import key_encryption_root
from sessions_app import cookie_cache


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _token(n: int) -> str:
    return cookie_cache.snapshot_encode(key_hash=f"{n:064d}", session={"id": str(n)}, user={"id": str(n)},
                                        user_private={})


@pytest.fixture
def decrypts(monkeypatch):
    calls = []
    real = cookie_cache.jwe.decrypt_compact

    def counting(token, *args, **kwargs):
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(cookie_cache.jwe, "decrypt_compact", counting)
    return calls


def test_a_snapshot_is_decrypted_once_until_the_ttl_has_passed(decrypts, settings):
    settings.SESSIONS = {"COOKIE_CACHE_SECONDS": 300}
    clock = Clock()
    memo = cookie_cache._PlaintextMemo(maxsize=10, clock=clock)
    root = key_encryption_root()
    token = _token(1)
    first = memo(token, root)
    clock.now += 299
    assert memo(token, root) == first
    assert decrypts == [token]
    clock.now += 2  # past the TTL: the snapshot cannot be fresh any more, the entry is gone
    assert memo(token, root) == first
    assert decrypts == [token, token]


def test_expired_entries_go_even_if_never_asked_for_again(settings):
    settings.SESSIONS = {"COOKIE_CACHE_SECONDS": 300}
    clock = Clock()
    memo = cookie_cache._PlaintextMemo(maxsize=100, clock=clock)
    root = key_encryption_root()
    for n in range(5):
        memo(_token(n), root)
    assert len(memo) == 5
    clock.now += 301
    memo(_token(99), root)  # the re-issued snapshot of a browser: the old ones are dropped
    assert len(memo) == 1


def test_at_most_maxsize_entries_the_oldest_go_first(decrypts, settings):
    settings.SESSIONS = {"COOKIE_CACHE_SECONDS": 300}
    memo = cookie_cache._PlaintextMemo(maxsize=3, clock=Clock())
    root = key_encryption_root()
    tokens = [_token(n) for n in range(4)]
    for token in tokens:
        memo(token, root)
    assert len(memo) == 3
    decrypts.clear()
    memo(tokens[3], root)
    memo(tokens[1], root)
    assert decrypts == []
    memo(tokens[0], root)  # evicted
    assert decrypts == [tokens[0]]


def test_a_token_that_does_not_decrypt_is_not_kept(settings):
    memo = cookie_cache._PlaintextMemo(maxsize=3, clock=Clock())
    token = _token(1)
    with pytest.raises(JoseError):
        memo(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), key_encryption_root())
    assert len(memo) == 0


def test_nothing_is_kept_while_the_cookie_cache_is_off(settings):
    settings.SESSIONS = {"COOKIE_CACHE_SECONDS": 0}
    memo = cookie_cache._PlaintextMemo(maxsize=3, clock=Clock())
    memo(_token(1), key_encryption_root())
    assert len(memo) == 0


def test_the_process_memo_is_bounded():
    assert isinstance(cookie_cache._plaintext, cookie_cache._PlaintextMemo)
    assert cookie_cache._plaintext.maxsize == 4096
