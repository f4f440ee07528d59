"""Authlib's OAuth 2.0 / OpenID Connect server, wired to our rows and services.

Authlib parses and validates the protocol: the authorization request (client, exact redirect URI,
response type, scopes, PKCE challenge, prompt), client authentication at the token endpoint
(``client_secret_basic``, ``client_secret_post``, ``none``), the code grant's checks (code bound to the
client and redirect URI, the PKCE verifier) and the refresh and revocation requests. What is issued, and how a
code is spent once, is ours (oidc_provider/services/).
"""

from __future__ import annotations

import json
import re

from authlib.integrations.django_oauth2.requests import DjangoOAuth2Payload, DjangoOAuth2Request
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError, InvalidRequestError, InvalidScopeError, UnsupportedTokenTypeError,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
from authlib.oidc.core.grants.util import validate_request_prompt
from django.http import HttpResponse

from audit.models import EventType
from audit.services import audit_record
from oidc_provider.models import OidcClient
from oidc_provider.services import tokens
from oidc_provider.services.authorization import code_issue

VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
NONCE_MAX_LENGTH = 512


def printable(value, limit: int = 64) -> str:
    """An untrusted value for the audit context: text without NUL (PostgreSQL refuses it), cut to ``limit``."""
    return str(value or "").replace("\x00", "")[:limit]


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only; required for public clients. At the token endpoint a verifier that does not
    match, or a missing one where a challenge was sent, is ``invalid_grant`` (the contract)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        request = grant.request
        challenge = request.payload.data.get("code_challenge")
        method = request.payload.data.get("code_challenge_method")
        if not challenge and request.client.is_public:
            raise InvalidRequestError("PKCE (code_challenge with S256) is required for public clients.")
        super().validate_code_challenge(grant, redirect_uri)
        if challenge and method != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")

    def validate_code_verifier(self, grant, result):
        request = grant.request
        verifier = request.form.get("code_verifier")
        challenge = request.authorization_code.code_challenge
        if not challenge:
            if verifier:
                raise InvalidGrantError("No code_challenge was sent with the authorization request.")
            return
        if not verifier:
            raise InvalidGrantError("Missing code_verifier.")
        if not VERIFIER_RE.match(verifier) or not compare_s256_code_challenge(verifier, challenge):
            raise InvalidGrantError("The code_verifier does not match the code_challenge.")


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def validate_authorization_request(self):
        redirect_uri = super().validate_authorization_request()
        nonce = self.request.payload.data.get("nonce")
        if nonce is not None and (len(nonce) > NONCE_MAX_LENGTH or "\x00" in nonce):
            raise InvalidRequestError("The nonce is too long or not text.", redirect_uri=redirect_uri,
                                      state=self.request.payload.state)
        scopes = (self.request.scope or "").split()
        if "openid" not in scopes:
            raise InvalidScopeError("The openid scope is required.", redirect_uri=redirect_uri,
                                    state=self.request.payload.state)
        return redirect_uri

    def save_authorization_code(self, code, request):
        payload = request.payload.data
        code_issue(client=request.client, user=request.user, sso_session=request.sso_session,
                   redirect_uri=request.payload.redirect_uri, scope=request.scope, nonce=payload.get("nonce") or "",
                   code_challenge=payload.get("code_challenge") or "",
                   code_challenge_method=payload.get("code_challenge_method") or "",
                   request=request._request, raw_code=code)

    def query_authorization_code(self, code, client):
        return tokens.code_for_redemption(code=code, client=client, request=self.request._request)

    def authenticate_user(self, authorization_code):
        return authorization_code.user

    def create_token_response(self):
        body = tokens.code_redeem(code=self.request.authorization_code, client=self.request.client,
                                  request=self.request._request)
        return 200, body, self.TOKEN_RESPONSE_HEADER


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        return tokens.grant_for_refresh_token(raw_token=refresh_token, client=self.request.client)

    def create_token_response(self):
        body = tokens.grant_refresh(grant=self.request.refresh_token, raw_token=self.request.form.get("refresh_token"),
                                    request=self.request._request)
        return 200, body, self.TOKEN_RESPONSE_HEADER


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def authenticate_token(self, request, client):
        self.check_params(request, client)
        return request.form.get("token")

    def check_params(self, request, client):
        if not request.form.get("token"):
            raise InvalidRequestError("Missing 'token' in request.")
        hint = request.form.get("token_type_hint")
        if hint and hint not in self.SUPPORTED_TOKEN_TYPES:
            raise UnsupportedTokenTypeError()

    def create_endpoint_response(self, request):
        client = self.authenticate_endpoint_client(request)
        token = self.authenticate_token(request, client)
        tokens.token_revoke(client=client, token=token,
                            token_type_hint=request.form.get("token_type_hint"), request=request._request)
        return 200, {}, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]

    def query_token(self, token_string, token_type_hint):  # pragma: no cover - create_endpoint_response does it
        return None

    def revoke_token(self, token, request):  # pragma: no cover
        return None


class DjangoRequest(DjangoOAuth2Request):
    """Authlib's Django request, without Authlib's own "https only" check (an OAuth2Error raised while the
    request object is built, which no caller catches: a 500). Transport security is Django's: HTTPS redirect
    and HSTS in production (DEBUG false), plain http on the development server."""

    def __init__(self, request):  # not super().__init__: OAuth2Request.__init__ is that check
        self.method = request.method
        self.uri = request.build_absolute_uri()
        self.headers = request.headers
        self._body = None
        self.payload = DjangoOAuth2Payload(request)
        self._request = request
        self.client = self.auth_method = self.user = self.authorization_code = None
        self.refresh_token = self.credential = self._scope = None


class Server(AuthorizationServer):
    def query_client(self, client_id):
        if not isinstance(client_id, str) or not client_id or len(client_id) > 64 or "\x00" in client_id:
            return None  # PostgreSQL refuses a NUL in a query parameter
        return OidcClient.objects.usable().filter(client_id=client_id).first()

    def save_token(self, token, request):  # pragma: no cover - the grants issue and store tokens themselves
        raise NotImplementedError

    def create_oauth2_request(self, request):
        if isinstance(request, DjangoOAuth2Request):
            return request
        return DjangoRequest(request)

    def create_json_request(self, request):  # pragma: no cover - no JSON endpoints
        raise NotImplementedError

    def send_signal(self, name, *args, **kwargs):
        return None

    def handle_response(self, status_code, payload, headers):
        body = json.dumps(payload) if isinstance(payload, dict) else payload
        response = HttpResponse(body, status=status_code)
        for key, value in headers:
            response[key] = value
        return response

    def handle_error_response(self, request, error):
        """Every refusal at the token and revocation endpoints is audited (the client id as sent)."""
        client = getattr(request, "client", None)
        client_id = client.client_id if client is not None else (request.payload.client_id or "")
        audit_record(event=EventType.OIDC_TOKEN_REFUSED, request=getattr(request, "_request", None), success=False,
                     reason=error.error, client_id=printable(client_id),
                     grant_type=printable(request.payload.grant_type, 32))
        response = super().handle_error_response(request, error)
        response["Cache-Control"] = "no-store"
        return response


def build_server() -> Server:
    server = Server(scopes_supported=None)  # unknown scopes are ignored (OidcClient.get_allowed_scope)
    server.register_grant(CodeGrant, [S256CodeChallenge(required=True), _openid_prompt])
    server.register_grant(RefreshGrant)
    server.register_endpoint(Revocation)
    return server


def _openid_prompt(grant):
    """OpenID Connect's ``prompt`` checks (``none`` with anything else is invalid; ``none`` without a
    signed-in user is ``login_required``), as Authlib's OpenIDCode registers them."""
    grant.register_hook("after_validate_consent_request", validate_request_prompt)


server = build_server()
