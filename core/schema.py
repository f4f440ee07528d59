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
}


def error_response(description: str) -> OpenApiResponse:
    """One more documented error of an endpoint (a 409 and its codes), in the envelope:
    ``responses={204: None, 409: error_response("last_owner"), **ERRORS}``."""
    return OpenApiResponse(ErrorBody, description=description)
