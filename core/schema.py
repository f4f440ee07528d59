"""OpenAPI pieces shared by every endpoint: the error envelope."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorBody = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorDetail",
            {
                "code": serializers.CharField(help_text="Stable snake_case code, listed in docs/api.md."),
                "message": serializers.CharField(),
                "fields": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()), required=False,
                    help_text="Only for validation errors: messages per field.",
                ),
            },
        )
    },
)

ERRORS = {
    400: OpenApiResponse(ErrorBody, description="validation_error, malformed_request, invalid_token, ..."),
    401: OpenApiResponse(ErrorBody, description="not_authenticated, invalid_credentials, invalid_token, ..."),
    403: OpenApiResponse(ErrorBody,
                         description="email_not_verified, permission_denied, reauthentication_required, ..."),
    404: OpenApiResponse(ErrorBody, description="not_found"),
    413: OpenApiResponse(ErrorBody, description="request_too_large"),
    415: OpenApiResponse(ErrorBody, description="unsupported_media_type"),
    429: OpenApiResponse(ErrorBody, description="rate_limited, account_locked (with Retry-After)"),
    503: OpenApiResponse(ErrorBody, description="service_unavailable: the database is briefly unavailable "
                                                "(with Retry-After; docs/deploy.md)"),
}


def error_response(description: str) -> OpenApiResponse:
    """One more documented error of an endpoint (a 409 and its codes), in the envelope:
    ``responses={204: None, 409: error_response("last_owner"), **ERRORS}``."""
    return OpenApiResponse(ErrorBody, description=description)


_ERROR_HEADERS = {
    "401": {"WWW-Authenticate": {"description": "The scheme to use (RFC 9110); `error=\"invalid_token\"` when a "
                                                "bearer token was refused (RFC 6750).",
                                 "required": True, "schema": {"type": "string"}}},
    "429": {"Retry-After": {"description": "Seconds until the limit or the lockout lets this request through.",
                            "required": True, "schema": {"type": "integer", "minimum": 1}}},
}


def error_headers(result, generator, request, public):
    """drf-spectacular postprocessing hook: every documented 401 names ``WWW-Authenticate`` and every 429
    ``Retry-After`` (core/errors.py sends both), so the document says what clients can rely on."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            for status, headers in _ERROR_HEADERS.items():
                if status in responses and "$ref" not in responses[status]:
                    responses[status].setdefault("headers", {}).update(headers)
    return result
