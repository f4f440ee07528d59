"""The JWKS cache: one fetch, Cache-Control, rate-limited refetch for unknown kids, stale serving."""

from __future__ import annotations

import pytest

from mana_auth import InvalidToken, JwksCache, ProviderUnavailable, TokenVerifier
from mana_auth.jwks import keys_from_jwks
from tests.support.mana_auth import AUDIENCE, ISSUER, Key, b64url, make_token
from tests.support.races import race


@pytest.fixture
def cache(jwks_server, clock):
    return JwksCache(jwks_server.url, clock=clock, refetch_interval=5, max_stale=600)


@pytest.fixture
def verifier(cache):
    return TokenVerifier(cache.url, ISSUER, AUDIENCE, jwks_cache=cache)


def test_fetched_once_for_many_verifications(verifier, jwks_server, key):
    for _ in range(50):
        verifier.verify(make_token(key))
    assert jwks_server.fetches == 1


def test_not_fetched_before_first_use(verifier, jwks_server):
    assert jwks_server.fetches == 0


def test_kept_for_cache_control_max_age_then_refetched(verifier, jwks_server, key, clock):
    jwks_server.cache_control = "public, max-age=120"
    verifier.verify(make_token(key))
    clock.advance(119)
    verifier.verify(make_token(key))
    assert jwks_server.fetches == 1
    clock.advance(2)
    verifier.verify(make_token(key))
    assert jwks_server.fetches == 2


def test_default_lifetime_without_cache_control(verifier, jwks_server, key, clock):
    jwks_server.cache_control = None
    verifier.verify(make_token(key))
    clock.advance(299)
    verifier.verify(make_token(key))
    assert jwks_server.fetches == 1
    clock.advance(2)
    verifier.verify(make_token(key))
    assert jwks_server.fetches == 2


@pytest.mark.parametrize("header,lifetime", [("no-store", 5), ("max-age=0", 5), ("max-age=99999999", 86400)])
def test_lifetime_is_clamped(cache, jwks_server, key, clock, header, lifetime):
    jwks_server.cache_control = header
    cache.get(key.kid)
    clock.advance(lifetime - 1)
    cache.get(key.kid)
    assert jwks_server.fetches == 1
    clock.advance(2)
    cache.get(key.kid)
    assert jwks_server.fetches == 2


def test_rotated_in_key_is_found_by_one_refetch(verifier, jwks_server, key, clock):
    verifier.verify(make_token(key))
    new = Key(kid="key-2")
    jwks_server.keys.append(new)
    clock.advance(6)  # past the refetch interval, well within max-age
    assert verifier.verify(make_token(new))
    assert jwks_server.fetches == 2
    assert verifier.verify(make_token(new)) and jwks_server.fetches == 2


def test_flood_of_forged_kids_causes_at_most_one_fetch_per_interval(verifier, jwks_server, key, clock):
    verifier.verify(make_token(key))
    clock.advance(10)
    for i in range(200):
        with pytest.raises(InvalidToken) as caught:
            verifier.verify(make_token(Key(kid=f"forged-{i}")))
        assert caught.value.reason == "unknown_kid"
    assert jwks_server.fetches == 2  # the first forged kid refetched once; the other 199 did not
    clock.advance(5)
    with pytest.raises(InvalidToken):
        verifier.verify(make_token(Key(kid="forged-late")))
    assert jwks_server.fetches == 3
    assert verifier.verify(make_token(key))  # known keys keep working throughout


def test_unknown_kid_right_after_first_fetch_is_not_refetched(verifier, jwks_server):
    with pytest.raises(InvalidToken, match="unknown_kid"):
        verifier.verify(make_token(Key(kid="nope")))
    assert jwks_server.fetches == 1


def test_refetch_interval_is_configurable(jwks_server, key, clock):
    cache = JwksCache(jwks_server.url, clock=clock, refetch_interval=60)
    cache.get(key.kid)
    clock.advance(30)
    with pytest.raises(InvalidToken):
        cache.get("unknown")
    assert jwks_server.fetches == 1
    clock.advance(31)
    with pytest.raises(InvalidToken):
        cache.get("unknown")
    assert jwks_server.fetches == 2


def test_served_stale_while_provider_is_down(verifier, jwks_server, server, key, clock):
    verifier.verify(make_token(key))
    server.stop()
    clock.advance(301)  # expired
    assert verifier.verify(make_token(key))  # the refetch fails: stale keys serve
    assert verifier.jwks.fetch_count == 2
    clock.advance(2)
    assert verifier.verify(make_token(key))
    assert verifier.jwks.fetch_count == 2  # failed attempts are rate-limited too
    clock.advance(596)  # 599 s past freshness: still within max_stale=600
    assert verifier.verify(make_token(key))
    clock.advance(2)  # beyond max_stale
    with pytest.raises(ProviderUnavailable) as caught:
        verifier.verify(make_token(key))
    assert caught.value.reason == "jwks_unavailable"
    assert isinstance(caught.value, InvalidToken)


def test_served_stale_when_provider_answers_an_error(verifier, jwks_server, key, clock):
    verifier.verify(make_token(key))
    jwks_server.status = 502
    clock.advance(301)
    assert verifier.verify(make_token(key))
    assert jwks_server.fetches == 2
    jwks_server.status = 200
    clock.advance(5)
    assert verifier.verify(make_token(key))
    assert jwks_server.fetches == 3  # recovered: fresh again


def test_provider_down_from_the_start(jwks_server, server, key, clock):
    server.stop()
    cache = JwksCache(jwks_server.url, clock=clock, timeout=1)
    with pytest.raises(ProviderUnavailable):
        cache.get(key.kid)
    with pytest.raises(ProviderUnavailable):
        cache.get(key.kid)
    assert cache.fetch_count == 1  # the second call did not retry within the interval


def test_concurrent_verifications_on_an_expired_cache_fetch_once(verifier, jwks_server, key, clock):
    token = make_token(key)
    verifier.verify(token)
    clock.advance(301)

    def work():
        for _ in range(20):
            verifier.verify(token)

    race(*[work] * 16)  # fails the test with any exception a thread raised
    assert jwks_server.fetches == 2


def test_concurrent_unknown_kid_fetches_once(verifier, jwks_server, key, clock):
    verifier.verify(make_token(key))
    new = Key(kid="key-2")
    jwks_server.keys.append(new)
    clock.advance(10)
    token = make_token(new)
    results = race(*[lambda: verifier.verify(token).user_id] * 12)
    assert len(results) == 12 and None not in results
    assert jwks_server.fetches == 2


def test_only_ed25519_signature_keys_are_imported(key):
    ed448_like = {**key.jwk, "kid": "ed448", "crv": "Ed448"}
    document = {"keys": [
        key.jwk,
        {"kty": "oct", "k": b64url(b"k" * 32), "kid": "oct"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},
        ed448_like,
        {**key.jwk, "kid": "enc", "use": "enc"},
        {**key.jwk, "kid": "x25519", "crv": "X25519"},
        {**key.jwk, "kid": "hs", "alg": "HS256"},
        {**key.jwk, "kid": "bad-x", "x": "!!"},
        {**key.jwk, "kid": "short-x", "x": b64url(b"short")},
        {k: v for k, v in key.jwk.items() if k != "kid"},
        "garbage",
    ]}
    assert list(keys_from_jwks(document)) == [key.kid]


def test_private_parts_in_a_jwks_are_never_imported(key):
    leaked = {**key.jwk, "d": b64url(key.private.private_bytes_raw())}
    imported = keys_from_jwks({"keys": [leaked]})[key.kid]
    assert imported.is_private is False


@pytest.mark.parametrize("document", [None, [], {"keys": "x"}, {"nokeys": []}])
def test_a_non_jwks_document_is_an_error(document):
    with pytest.raises(ValueError):
        keys_from_jwks(document)


def test_garbage_answer_keeps_the_old_keys(verifier, jwks_server, server, key, clock):
    verifier.verify(make_token(key))
    server.route("GET", jwks_server.path)(lambda handler, body: (200, {}, b"{not json"))
    clock.advance(301)
    assert verifier.verify(make_token(key))
    assert jwks_server.fetches == 2


def test_oversized_answer_is_refused(jwks_server, server, key, clock):
    huge = b'{"keys": [], "pad": "' + b"x" * (1024 * 1024) + b'"}'
    server.route("GET", jwks_server.path)(lambda handler, body: (200, {}, huge))
    cache = JwksCache(jwks_server.url, clock=clock)
    with pytest.raises(ProviderUnavailable):
        cache.get(key.kid)
