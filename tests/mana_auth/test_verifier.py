"""TokenVerifier.verify: what it accepts and every way it refuses."""

from __future__ import annotations

import json
import time

import pytest

import mana_auth
from mana_auth import InvalidToken, TokenVerifier
from tests.support.mana_auth import AUDIENCE, ISSUER, Key, b64url, claims_for, encode, hmac_token, make_token


def reason(verifier, token) -> str:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    return caught.value.reason


def test_valid_token_gives_principal(verifier, key):
    token = make_token(key, org="org-9", orgRole="admin")
    principal = verifier.verify(token)
    claims = json.loads(__import__("base64").urlsafe_b64decode(token.split(".")[1] + "=="))
    assert principal.user_id == claims["sub"]
    assert principal.email == "user1@example.com"
    assert principal.role == "user"
    assert principal.session_id == claims["sid"]
    assert (principal.org, principal.org_role) == ("org-9", "admin")
    assert principal.claims == claims
    assert principal.jti == claims["jti"] and principal.expires_at == claims["exp"]
    assert principal.is_authenticated and principal.pk == claims["sub"]
    assert "eyJ" not in repr(principal)  # the raw token stays out of logs


def test_principal_without_org_and_service_token(verifier, key):
    principal = verifier.verify(make_token(key, role="service", email=None, sid=None))
    assert principal.org is None and principal.org_role is None
    assert principal.session_id is None and principal.email is None and principal.is_service


def test_rfc9068_media_type_spelling_is_accepted(verifier, key):
    assert verifier.verify(make_token(key, {"typ": "application/at+jwt"})).role == "user"


def test_audience_list_and_several_accepted_audiences(jwks_server, key):
    verifier = TokenVerifier(jwks_server.url, ISSUER, ["billing", AUDIENCE])
    assert verifier.verify(make_token(key, aud=["other", "billing"]))
    assert reason(verifier, make_token(key, aud=["other", "another"])) == "wrong_audience"


@pytest.mark.parametrize("header", [{"alg": "none"}, {"alg": "None"}, {"alg": "NONE"}])
def test_alg_none_is_refused(verifier, key, header):
    token = encode({"kid": key.kid, "typ": "at+jwt", **header}, claims_for(), None)
    assert reason(verifier, token) == "alg_not_allowed"


def test_alg_none_with_signature_stripped_from_valid_token(verifier, key):
    good = make_token(key)
    head = b64url(json.dumps({"alg": "none", "kid": key.kid, "typ": "at+jwt"}).encode())
    assert reason(verifier, f"{head}.{good.split('.')[1]}.") == "alg_not_allowed"


def test_hmac_token_signed_with_the_public_key_is_refused(verifier, key):
    # The classic confusion attack: HS256 keyed with the published public key bytes (or the JWK text).
    raw_public = key.private.public_key().public_bytes_raw()
    for secret in (raw_public, json.dumps(key.jwk).encode(), key.jwk["x"].encode()):
        assert reason(verifier, hmac_token(secret, {"kid": key.kid})) == "alg_not_allowed"


def test_hmac_token_with_an_oct_key_published_in_jwks_is_refused(jwks_server, verifier):
    # Even if the JWKS contained a symmetric key, it is never used.
    jwks_server.extra_jwks = [{"kty": "oct", "k": b64url(b"s" * 32), "kid": "hmac-1", "alg": "HS256"}]
    assert reason(verifier, hmac_token(b"s" * 32, {"kid": "hmac-1"})) == "alg_not_allowed"
    token = encode({"alg": "EdDSA", "kid": "hmac-1", "typ": "at+jwt"}, claims_for(), lambda m: b"x" * 64)
    assert reason(verifier, token) == "unknown_kid"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "Ed25519", "eddsa", "HS512"])
def test_other_algorithms_are_refused(verifier, key, alg):
    assert reason(verifier, make_token(key, {"alg": alg})) == "alg_not_allowed"


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "at+JWT2", "id_token"])
def test_wrong_or_missing_typ_is_refused(verifier, key, typ):
    header = {"alg": "EdDSA", "kid": key.kid}
    if typ is not None:
        header["typ"] = typ
    assert reason(verifier, encode(header, claims_for(), key.private.sign)) == "wrong_typ"


@pytest.mark.parametrize("kid", [None, "", 7, ["key-1"]])
def test_missing_or_non_string_kid_is_refused(verifier, key, kid):
    header = {"alg": "EdDSA", "typ": "at+jwt"}
    if kid is not None:
        header["kid"] = kid
    assert reason(verifier, encode(header, claims_for(), key.private.sign)) == "missing_kid"


def test_bad_signature_is_refused(verifier, key):
    header, payload, signature = make_token(key).split(".")
    forged_claims = b64url(json.dumps(claims_for(role="admin")).encode())
    assert reason(verifier, f"{header}.{forged_claims}.{signature}") == "bad_signature"
    other = Key(kid=key.kid)  # an attacker's key claiming the real kid
    assert reason(verifier, make_token(other)) == "bad_signature"
    assert reason(verifier, f"{header}.{payload}.{b64url(b'')}") == "bad_signature"


def test_jku_x5u_and_embedded_jwk_headers_are_ignored(server, jwks_server, verifier, key):
    attacker = Key(kid="evil")
    evil_jwks = {"keys": [attacker.jwk]}
    server.route("GET", "/evil/jwks")(lambda handler, body: (200, {}, evil_jwks))
    for header in ({"jku": server.url + "/evil/jwks"}, {"x5u": server.url + "/evil/jwks"},
                   {"jwk": attacker.jwk}, {"jku": server.url + "/evil/jwks", "jwk": attacker.jwk}):
        assert reason(verifier, make_token(attacker, header)) == "unknown_kid"
        # The attacker's key under the real kid: the real key is used, so the signature fails.
        assert reason(verifier, make_token(Key(kid=key.kid, private=attacker.private), header)) == "bad_signature"
    assert server.hits.get("/evil/jwks", 0) == 0
    # And a genuine token that happens to carry such headers still verifies with the JWKS key.
    assert verifier.verify(make_token(key, {"jku": server.url + "/evil/jwks", "jwk": attacker.jwk}))


@pytest.mark.parametrize("header", [
    {"crit": ["exp"]}, {"crit": "b64"}, {"b64": False, "crit": ["b64"]}, {"zip": "DEF"},
])
def test_critical_and_content_changing_headers_are_refused(verifier, key, header):
    assert reason(verifier, make_token(key, header)) == "bad_header"


def test_unknown_kid_is_refused_after_one_refetch(jwks_server, verifier, key):
    verifier.verify(make_token(key))
    assert jwks_server.fetches == 1
    verifier.jwks._last_attempt -= 10  # the refetch rate limit has passed
    assert reason(verifier, make_token(Key(kid="never-published"))) == "unknown_kid"
    assert jwks_server.fetches == 2


@pytest.mark.parametrize("claims,expected", [
    ({"iss": "https://evil.example"}, "wrong_issuer"),
    ({"iss": None}, "wrong_issuer"),
    ({"aud": "another-app"}, "wrong_audience"),
    ({"aud": None}, "wrong_audience"),
    ({"aud": 5}, "wrong_audience"),
    ({"exp": None}, "bad_claims"),
    ({"exp": "9999999999"}, "bad_claims"),
    ({"exp": True}, "bad_claims"),
    ({"iat": None}, "bad_claims"),
    ({"sub": None}, "bad_claims"),
    ({"sub": ""}, "bad_claims"),
    ({"sub": 42}, "bad_claims"),
    ({"role": ["admin"]}, "bad_claims"),
    ({"email": {"a": 1}}, "bad_claims"),
    ({"orgRole": 3}, "bad_claims"),
])
def test_claims_are_checked(verifier, key, claims, expected):
    assert reason(verifier, make_token(key, **claims)) == expected


def test_exp_iat_nbf_respect_the_leeway(verifier, key):
    now = int(time.time())
    assert verifier.leeway == 30
    assert verifier.verify(make_token(key, iat=now - 920, exp=now - 20))  # expired 20 s ago: within leeway
    assert reason(verifier, make_token(key, iat=now - 960, exp=now - 60)) == "expired"
    assert verifier.verify(make_token(key, iat=now + 20, exp=now + 920))  # clock skew within leeway
    assert reason(verifier, make_token(key, iat=now + 120, exp=now + 1000)) == "issued_in_future"
    assert verifier.verify(make_token(key, nbf=now + 20))
    assert reason(verifier, make_token(key, nbf=now + 120)) == "not_yet_valid"


def test_leeway_is_configurable(jwks_server, key):
    strict = TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, leeway=0)
    now = int(time.time())
    with pytest.raises(InvalidToken, match="expired"):
        strict.verify(make_token(key, iat=now - 910, exp=now - 5))


def test_payload_that_is_not_an_object_is_refused(verifier, key):
    for payload in (b"[1,2]", b"\"x\"", b"not json", b"NaN"):
        token = encode({"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt"}, payload, key.private.sign)
        assert reason(verifier, token) == "bad_claims"


def test_non_finite_exp_is_refused(verifier, key):
    token = encode({"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt"},
                   json.dumps(claims_for()).replace('"exp": ', '"exp": Infinity, "x": ').encode(), key.private.sign)
    assert reason(verifier, token) == "bad_claims"


@pytest.mark.parametrize("token", [
    None, 5, b"a.b.c", "", "abc", "a.b", "a.b.c.d", "...", "a.b.c", "!!!.???.***",
    "eyJhbGciOiJFZERTQSJ9.e30", "é.é.é", "x" * 9000,
])
def test_malformed_tokens_are_refused(verifier, token):
    assert reason(verifier, token) == "malformed"


def test_header_that_is_not_an_object_is_refused(verifier, key):
    token = f"{b64url(b'[1]')}.{b64url(b'{}')}.{b64url(b'x' * 64)}"
    assert reason(verifier, token) == "malformed"


def test_invalid_token_carries_a_reason_and_is_a_mana_auth_error(verifier):
    with pytest.raises(mana_auth.ManaAuthError) as caught:
        verifier.verify("nope")
    assert isinstance(caught.value, InvalidToken) and caught.value.reason == "malformed"


def test_constructor_refuses_bad_configuration(jwks_server):
    with pytest.raises(ValueError):
        TokenVerifier("file:///etc/passwd", ISSUER, AUDIENCE)
    with pytest.raises(ValueError):
        TokenVerifier(jwks_server.url, "", AUDIENCE)
    with pytest.raises(ValueError):
        TokenVerifier(jwks_server.url, ISSUER, [])
    with pytest.raises(ValueError):
        TokenVerifier(jwks_server.url, ISSUER, AUDIENCE, check_revocation=True)  # without an introspector
