"""One error envelope for every API error.

Domain code raises ``ApiError`` subclasses (a stable ``code`` and an HTTP ``status``); DRF's own
exceptions, Django's 404 and body-size errors are translated here, so every client parses exactly
``{"error": {"code", "message", "fields"?}}``. A database outage is 503 ``service_unavailable`` with
``Retry-After`` (core/outage.py).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from core.outage import CODE as OUTAGE_CODE
from core.outage import MESSAGE as OUTAGE_MESSAGE
from core.outage import RETRY_AFTER_SECONDS, is_outage, outage_log


class ApiError(exceptions.APIException):
    """A domain error with a stable code. Subclass it or raise it with a code and status."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"
    default_detail = "The request could not be processed."

    def __init__(self, message: str | None = None, *, code: str | None = None, status_code: int | None = None,
                 fields: dict | None = None, headers: dict | None = None):
        self.code = code or self.default_code
        self.message = message or str(self.default_detail)
        if status_code is not None:
            self.status_code = status_code
        self.fields = fields
        self.headers = headers or {}
        super().__init__(detail=self.message, code=self.code)


class NotAuthenticated(ApiError):
    status_code = 401
    default_code = "not_authenticated"
    default_detail = "Authentication credentials were not provided."


class InvalidToken(ApiError):
    status_code = 401
    default_code = "invalid_token"
    default_detail = "The access token is invalid or expired."


class NotFound(ApiError):
    status_code = 404
    default_code = "not_found"
    default_detail = "Not found."


# DRF exception class -> (status, code). Anything else DRF raises keeps its status and default code.
_DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "invalid_token",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "rate_limited",
}


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def _flatten_fields(detail) -> dict[str, list[str]]:
    """DRF's nested ValidationError detail -> {"field": ["message", ...]}, dotted for nesting."""
    if isinstance(detail, list):
        return {"nonFieldErrors": [str(item) for item in detail]}
    fields: dict[str, list[str]] = {}
    for key, value in detail.items():
        name = "nonFieldErrors" if key == "non_field_errors" else str(key)
        if isinstance(value, dict):
            for sub, messages in _flatten_fields(value).items():
                fields[f"{name}.{sub}"] = messages
        elif isinstance(value, list):
            fields[name] = [str(v) for v in value if not isinstance(v, (dict, list))] or ["Invalid value."]
        else:
            fields[name] = [str(value)]
    return fields


def exception_handler(exc, context):
    response = _error_response(exc, context)
    if response is not None and response.status_code == 401 and "WWW-Authenticate" not in response:
        # RFC 9110: every 401 names the scheme to use; RFC 6750 adds why a bearer token was refused.
        code = response.data["error"]["code"]
        response["WWW-Authenticate"] = 'Bearer realm="api", error="invalid_token"' if code in (
            "invalid_token", "session_revoked") else 'Bearer realm="api"'
    return response


def _error_response(exc, context=None) -> Response | None:
    from rest_framework.views import set_rollback  # late: rest_framework.views imports our auth class

    if is_outage(exc):
        # The database is down or timed out: 503 with Retry-After, one warning line (core/outage.py).
        set_rollback()
        request = (context or {}).get("request")
        if request is not None:
            outage_log(request, exc)
        response = Response(error_body(OUTAGE_CODE, OUTAGE_MESSAGE), status=503,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"})
        response._has_been_logged = True
        return response
    if isinstance(exc, Http404):
        exc = NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = ApiError("The request body is larger than 1 MiB.", code="request_too_large", status_code=413)

    if isinstance(exc, ApiError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code, headers=exc.headers)

    if isinstance(exc, exceptions.ValidationError):
        set_rollback()
        return Response(
            error_body("validation_error", "The request has invalid fields.", _flatten_fields(exc.detail)),
            status=400,
        )

    if isinstance(exc, exceptions.APIException):
        set_rollback()
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
        code = code or (exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code)
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        message = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
        return Response(error_body(code, str(message)), status=exc.status_code, headers=headers)

    return None  # a real bug: Django's 500 handler answers (in the envelope for API paths)


def json_error(code: str, message: str, status_code: int, headers: dict | None = None) -> JsonResponse:
    """The same envelope outside DRF (middleware, URL-level 404 and 500 handlers)."""
    response = JsonResponse(error_body(code, message), status=status_code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response
