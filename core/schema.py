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
