"""A relying party for the OpenID Connect tests: Authlib's own client (``OAuth2Session``), its HTTP sent
through Django's test client (``DjangoTransport``), and id_token verification against the published JWKS
with joserfc (the JOSE library Authlib uses)."""

from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from django.test import Client
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from requests.structures import CaseInsensitiveDict

BASE = "http://testserver"
AUTHORIZE = "/oidc/authorize"
TOKEN = "/oidc/token"
USERINFO = "/oidc/userinfo"
REVOKE = "/oidc/revoke"
LOGOUT = "/oidc/logout"
DISCOVERY = "/.well-known/openid-configuration"
REDIRECT = "https://rp.example.com/callback"
POST_LOGOUT = "https://rp.example.com/signed-out"


class DjangoTransport(requests.adapters.BaseAdapter):
    """requests -> django.test.Client: the relying party's server talks to the provider in-process."""

    def __init__(self, client: Client | None = None):
        super().__init__()
        self.client = client or Client()

    def send(self, request, **kwargs):
        parts = urlsplit(request.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request.headers.items()
                   if k.lower() not in ("content-type", "content-length", "host")}
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        answer = self.client.generic(request.method, path, data=body,
                                     content_type=request.headers.get("Content-Type", ""), **headers)
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.content
        response.headers = CaseInsensitiveDict(dict(answer.items()))
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self):
        pass


def relying_party(client_id: str, client_secret: str | None = None, *, scope="openid profile email",
                  redirect_uri=REDIRECT, auth_method=None) -> OAuth2Session:
    """Authlib's OAuth2Session for a registered client, PKCE S256 on, talking to the test server."""
    method = auth_method or ("none" if client_secret is None else "client_secret_basic")
    session = OAuth2Session(client_id, client_secret, scope=scope, redirect_uri=redirect_uri,
                            code_challenge_method="S256", token_endpoint_auth_method=method)
    session.mount(BASE, DjangoTransport())
    return session


def begin(rp: OAuth2Session, **params):
    """The authorization URL (path and query) Authlib builds, with a fresh nonce and PKCE verifier."""
    verifier = secrets.token_urlsafe(48)
    params.setdefault("nonce", secrets.token_urlsafe(16))
    url, state = rp.create_authorization_url(BASE + AUTHORIZE, code_verifier=verifier, **params)
    parts = urlsplit(url)
    return {"path": f"{parts.path}?{parts.query}", "state": state, "verifier": verifier, "nonce": params["nonce"]}


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def finish(rp: OAuth2Session, location: str, verifier: str, **kwargs) -> dict:
    """The RP's token request for the redirect it received (Authlib checks state and sends the verifier)."""
    return rp.fetch_token(BASE + TOKEN, authorization_response=location, code_verifier=verifier, **kwargs)


def published_keys(client: Client | None = None) -> KeySet:
    body = (client or Client()).get("/.well-known/jwks.json").content
    return KeySet.import_key_set(json.loads(body))


def verify_id_token(id_token: str, *, client_id: str, issuer: str = BASE, nonce: str | None = None) -> dict:
    """Signature against the published JWKS, then iss, aud, exp, iat (and nonce when one was sent). Checked
    twice: by PyJWT, a JOSE library independent of the one that signs (joserfc), as a relying party
    would; then by joserfc's claims registry."""
    jwks = json.loads(Client().get("/.well-known/jwks.json").content)
    kid = pyjwt.get_unverified_header(id_token)["kid"]
    key = next(k for k in pyjwt.PyJWKSet.from_dict(jwks).keys if k.key_id == kid)
    pyjwt.decode(id_token, key.key, algorithms=["RS256", "EdDSA"], audience=client_id, issuer=issuer,
                 options={"require": ["exp", "iat", "iss", "aud", "sub"]})
    token = jwt.decode(id_token, published_keys(), algorithms=["RS256", "EdDSA"])
    claims = {"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id},
              "sub": {"essential": True}, "exp": {"essential": True}, "iat": {"essential": True}}
    if nonce is not None:
        claims["nonce"] = {"essential": True, "value": nonce}
    JWTClaimsRegistry(**claims).validate(token.claims)
    return {"header": token.header, **token.claims}
