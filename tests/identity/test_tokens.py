"""Access tokens as the contract defines them, and everything bearer authentication must refuse."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey
from rest_framework.test import APIClient

from accounts.models import User
from identity.services import keys
from identity.services.tokens import access_token_issue
from sessions_app.models import DeviceSession
from tests.factories import UserFactory
from tests.support.errors import error_of
from tests.support.tokens import parts

ME = "/api/v1/auth/me"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj) -> str:
    return b64(json.dumps(obj).encode())


def valid_claims(tokens, settings, **changes):
    now = int(time.time())
    claims = {
        "iss": settings.AUTH_ISSUER, "aud": settings.AUTH_AUDIENCE, "sub": tokens["user"]["id"],
        "email": tokens["user"]["email"], "role": "user", "sid": tokens["session"]["id"],
        "iat": now, "exp": now + 900, "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims, *, header=None, key=None) -> str:
    signer = keys.signing_key_current()
    full = {"alg": "EdDSA", "kid": signer.kid, "typ": "at+jwt", **(header or {})}
    return jwt.encode({k: v for k, v in full.items() if v is not None}, claims, key or signer.key,
                      algorithms=["EdDSA"])


def raw_sign(header, claims) -> str:
    """Sign with the real key without joserfc's header checks (to send headers it would refuse)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    return f"{signing_input}.{b64(keys.signing_key_current().key.private_key.sign(signing_input.encode()))}"


def call_me(token: str):
    return APIClient().get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")


def assert_refused(response, codes=("invalid_token",)):
    error = error_of(response, 401)
    assert set(error) == {"code", "message"} and error["code"] in codes, error
    assert 'error="invalid_token"' in response.headers.get("WWW-Authenticate", ""), response.headers


# --- the token itself ------------------------------------------------------------------------------

def test_access_token_header_and_claims(tokens, user, settings):
    header, claims = parts(tokens["accessToken"])
    kid = keys.signing_key_current().kid
    assert header == {"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}
    assert set(claims) == {"sub", "email", "role", "sid", "iss", "aud", "iat", "exp", "jti", "amr"}
    assert claims["amr"] == ["pwd"] == tokens["session"]["amr"]  # RFC 8176: a password sign-in
    assert claims["sub"] == str(user.pk) == tokens["user"]["id"]
    assert claims["email"] == user.email and claims["role"] == "user"
    assert claims["sid"] == tokens["session"]["id"]
    assert DeviceSession.objects.filter(pk=claims["sid"], user=user).exists()
    assert claims["iss"] == settings.AUTH_ISSUER and claims["aud"] == settings.AUTH_AUDIENCE
    assert isinstance(claims["iat"], int) and abs(claims["iat"] - time.time()) < 5
    assert claims["exp"] == claims["iat"] + 900 and tokens["expiresIn"] == 900
    assert len(claims["jti"]) >= 16


def test_jti_is_unique_per_token(tokens, user):
    other = access_token_issue(user=user, session_id=tokens["session"]["id"])
    assert other.claims["jti"] != parts(tokens["accessToken"])[1]["jti"]


def test_token_verifies_with_joserfc_against_the_published_jwks(api, tokens):
    """What a consuming app does: fetch the JWKS, verify the signature with the public key only."""
    published = api.get("/.well-known/jwks.json").json()
    key_set = KeySet.import_key_set(published)
    decoded = jwt.decode(tokens["accessToken"], key_set, algorithms=["EdDSA"])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.claims["sid"] == tokens["session"]["id"]
    # The public key alone: a token signed by another key does not verify against it.
    forged = jwt.encode({"alg": "EdDSA", "kid": decoded.header["kid"], "typ": "at+jwt"}, decoded.claims,
                        OKPKey.generate_key("Ed25519"), algorithms=["EdDSA"])
    with pytest.raises(JoseError):
        jwt.decode(forged, key_set, algorithms=["EdDSA"])


def test_a_correctly_signed_token_is_accepted(tokens, settings):
    """The control for the refusals below: the forging helpers make tokens the API accepts."""
    for token in (sign(valid_claims(tokens, settings)),
                  raw_sign({"alg": "EdDSA", "kid": keys.signing_key_current().kid, "typ": "at+jwt"},
                           valid_claims(tokens, settings))):
        response = call_me(token)
        assert response.status_code == 200, response.content
        assert response.json()["id"] == tokens["user"]["id"]


# --- what bearer authentication refuses --------------------------------------------------------------

def _alg_none(tokens, settings):
    kid = keys.signing_key_current().kid
    return f'{segment({"alg": "none", "kid": kid, "typ": "at+jwt"})}.{segment(valid_claims(tokens, settings))}.'


def _hs256_with_public_key(tokens, settings, secret_of=lambda row: base64.urlsafe_b64decode(row.public_x + "==")):
    """The classic algorithm confusion: HMAC keyed with the (public) verification key."""
    row = keys.published_keys()[0]
    signing_input = f'{segment({"alg": "HS256", "kid": row.kid, "typ": "at+jwt"})}.' \
                    f'{segment(valid_claims(tokens, settings))}'
    mac = hmac.new(secret_of(row), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _tampered(tokens, settings):
    header, payload, signature = tokens["accessToken"].split(".")
    claims = parts(tokens["accessToken"])[1]
    claims["role"] = "admin"
    return f"{header}.{segment(claims)}.{signature}"


FORGERIES = {
    "alg none": _alg_none,
    "alg none, no signature part": lambda t, s: _alg_none(t, s)[:-1],
    "HS256 keyed with the raw public key": _hs256_with_public_key,
    "HS256 keyed with the public JWK x": lambda t, s: _hs256_with_public_key(t, s, lambda row: row.public_x.encode()),
    "HS256 keyed with the JWK json": lambda t, s: _hs256_with_public_key(
        t, s, lambda row: json.dumps(row.public_jwk()).encode()),
    "typ JWT": lambda t, s: sign(valid_claims(t, s), header={"typ": "JWT"}),
    "no typ": lambda t, s: sign(valid_claims(t, s), header={"typ": None}),
    "wrong iss": lambda t, s: sign(valid_claims(t, s, iss="https://evil.example")),
    "wrong aud": lambda t, s: sign(valid_claims(t, s, aud="another-api")),
    "no aud": lambda t, s: sign(valid_claims(t, s, aud=None)),
    "expired beyond the leeway": lambda t, s: sign(valid_claims(
        t, s, iat=int(time.time()) - 960, exp=int(time.time()) - 60)),
    "issued far in the future": lambda t, s: sign(valid_claims(
        t, s, iat=int(time.time()) + 3600, exp=int(time.time()) + 4500)),
    "no exp": lambda t, s: sign(valid_claims(t, s, exp=None)),
    "exp as a string": lambda t, s: sign(valid_claims(t, s, exp="9999999999")),
    "exp infinite": lambda t, s: sign(valid_claims(t, s, exp=float("inf"))),
    "no sid": lambda t, s: sign(valid_claims(t, s, sid=None)),
    "unknown kid, own key": lambda t, s: sign(valid_claims(t, s), header={"kid": "not-a-kid"},
                                              key=OKPKey.generate_key("Ed25519")),
    "real kid, another key": lambda t, s: sign(valid_claims(t, s), key=OKPKey.generate_key("Ed25519")),
    "no kid": lambda t, s: sign(valid_claims(t, s), header={"kid": None}),
    "kid not a string": lambda t, s: raw_sign({"alg": "EdDSA", "kid": 7, "typ": "at+jwt"}, valid_claims(t, s)),
    "claims a json list": lambda t, s: raw_sign({"alg": "EdDSA", "kid": keys.signing_key_current().kid,
                                                 "typ": "at+jwt"}, [valid_claims(t, s)]),
    "tampered payload": _tampered,
    "signature cut off": lambda t, s: t["accessToken"].rsplit(".", 1)[0] + ".",
    "garbage": lambda t, s: "garbage",
    "three garbage parts": lambda t, s: "a.b.c",
    "empty parts": lambda t, s: "..",
    "header a json list": lambda t, s: f"{segment([1])}.{segment({})}.x",
    "payload not json": lambda t, s: segment({"alg": "EdDSA", "typ": "at+jwt", "kid": "k"}) + "." + b64(b"\xff") + ".x",
    "huge": lambda t, s: "a" * 3000 + "." + "b" * 3000 + ".c",
}


def test_bearer_refuses_forgeries(tokens, settings):
    """One test for all of them (each case logs in and flushes the database otherwise)."""
    accepted = {}
    for name, forge in FORGERIES.items():
        response = call_me(forge(tokens, settings))
        try:
            assert_refused(response)
        except AssertionError as error:
            accepted[name] = str(error)
    assert not accepted, accepted
    assert call_me(tokens["accessToken"]).status_code == 200  # and the genuine token still works


def test_malformed_authorization_headers(tokens):
    for header in ["Bearer", "Bearer a b", "Bearer \u00e9t\u00e9", "bearer garbage", "Bearer " + "a" * 100_000]:
        assert_refused(APIClient().get(ME, HTTP_AUTHORIZATION=header))


def test_expiry_leeway_is_30_seconds(tokens, user):
    sid = tokens["session"]["id"]
    within = access_token_issue(user=user, session_id=sid, now=int(time.time()) - 900 - 15)
    assert within.claims["exp"] < time.time()  # already expired, but inside the leeway
    assert call_me(within.token).status_code == 200
    beyond = access_token_issue(user=user, session_id=sid, now=int(time.time()) - 900 - 45)
    assert_refused(call_me(beyond.token))
    slightly_ahead = access_token_issue(user=user, session_id=sid, now=int(time.time()) + 15)
    assert call_me(slightly_ahead.token).status_code == 200  # clock skew the other way


SESSION_CODES = ("session_revoked", "invalid_token")


def test_token_of_a_revoked_session_is_refused(api, tokens, authed):
    assert authed.get(ME).status_code == 200
    assert authed.post("/api/v1/auth/logout").status_code == 204
    response = authed.get(ME)
    assert_refused(response, SESSION_CODES)
    assert response.json()["error"]["code"] == "session_revoked"


def test_token_of_an_expired_session_is_refused(tokens, authed):
    DeviceSession.objects.filter(pk=tokens["session"]["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_refused(authed.get(ME), ("session_expired",))  # the one rule: an expired session says so (docs/api.md)


def test_token_whose_sub_is_not_the_session_user_is_refused(tokens, settings):
    other = UserFactory()
    response = call_me(sign(valid_claims(tokens, settings, sub=str(other.pk))))
    assert_refused(response, SESSION_CODES)


def test_token_for_an_unknown_or_malformed_sid_is_refused(tokens, settings):
    assert_refused(call_me(sign(valid_claims(tokens, settings, sid=str(uuid.uuid4())))), SESSION_CODES)
    assert_refused(call_me(sign(valid_claims(tokens, settings, sid="not-a-uuid"))), SESSION_CODES)


def test_token_of_an_inactive_user_is_refused(tokens, authed, user):
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert_refused(authed.get(ME), SESSION_CODES)
