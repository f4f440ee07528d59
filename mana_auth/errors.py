"""The exceptions of mana_auth. Every failure to trust a token is an ``InvalidToken`` with a ``reason``."""

from __future__ import annotations


class ManaAuthError(Exception):
    """Base class of every exception this package raises."""


class InvalidToken(ManaAuthError):
    """The token must be refused. ``reason`` is a stable snake_case word for logs and metrics
    (``malformed``, ``alg_not_allowed``, ``wrong_typ``, ``missing_kid``, ``unknown_kid``,
    ``bad_signature``, ``bad_header``, ``bad_claims``, ``wrong_issuer``, ``wrong_audience``,
    ``expired``, ``not_yet_valid``, ``issued_in_future``, ``revoked``, ...). Do not send it to clients:
    tell them only that the token is invalid."""

    def __init__(self, reason: str, message: str | None = None):
        super().__init__(message or reason)
        self.reason = reason


class ProviderUnavailable(InvalidToken):
    """The token could not be checked because the identity provider did not answer: no usable JWKS
    (``jwks_unavailable``) or no introspection answer (``introspection_unavailable``). Still an
    ``InvalidToken`` (fail closed), but the Django/DRF parts answer 503, not 401, so clients do not
    throw their sessions away while the provider is down."""


class TransportError(ManaAuthError):
    """An HTTP request did not get an answer (connection refused, timeout, TLS error)."""


class ApiError(ManaAuthError):
    """The provider answered with an error envelope ``{"error": {"code", "message", "fields"?}}``."""

    def __init__(self, status: int, code: str, message: str, fields: dict | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}


class NotLoggedIn(ManaAuthError):
    """The client has no token pair (never logged in, logged out, or the refresh token was refused;
    then ``code`` is the provider's error code, e.g. ``refresh_token_reused``)."""

    def __init__(self, message: str = "log in first", code: str | None = None):
        super().__init__(message)
        self.code = code
