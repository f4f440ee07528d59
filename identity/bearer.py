"""The bearer token of a request, verified once: ``bearer_claims(request)``.

Every authentication class that reads ``Authorization: Bearer`` (device sessions, service accounts) calls it;
the claims, or the refusal, are kept on the underlying ``HttpRequest``, so the signature is checked once per
request whichever classes run."""

from __future__ import annotations

import logging

from rest_framework.authentication import get_authorization_header

from core.errors import InvalidToken
from identity.services.tokens import TokenError, access_token_verify

logger = logging.getLogger(__name__)

# RFC 6750 3.1: a request that carried a bad token is told so in the challenge, not only in the body.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'}
KEYWORD = b"bearer"
_ATTRIBUTE = "_mana_bearer_claims"


def _verify(request) -> dict | None:
    header = get_authorization_header(request).split()
    if not header or header[0].lower() != KEYWORD:
        return None
    if len(header) != 2:
        raise InvalidToken("The Authorization header must be 'Bearer <accessToken>'.", headers=CHALLENGE)
    try:
        token = header[1].decode("ascii")
    except UnicodeDecodeError:
        raise InvalidToken(headers=CHALLENGE) from None
    try:
        return access_token_verify(token)
    except TokenError as exc:
        logger.info("access token refused: %s", exc.reason)
        raise InvalidToken(headers=CHALLENGE) from None


def bearer_claims(request) -> dict | None:
    """The verified claims of the request's ``Authorization: Bearer`` token; None without a bearer header.
    A malformed or invalid token raises ``InvalidToken`` (with the RFC 6750 challenge), every time it is asked."""
    http_request = getattr(request, "_request", request)
    try:
        outcome = getattr(http_request, _ATTRIBUTE)
    except AttributeError:
        try:
            outcome = _verify(http_request)
        except InvalidToken as error:
            outcome = error
        setattr(http_request, _ATTRIBUTE, outcome)
    if isinstance(outcome, InvalidToken):
        raise InvalidToken(outcome.message, code=outcome.code, headers=outcome.headers)
    return outcome
