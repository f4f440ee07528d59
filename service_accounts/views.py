"""Service accounts on the wire: client credentials -> service token, and token introspection."""

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from core.responses import secret_response
from core.schema import ERRORS
from security.ratelimit import rate_limit
from service_accounts import services
from service_accounts.permissions import IsServiceAccount
from service_accounts.serializers import IntrospectInput, IntrospectOutput, ServiceTokenInput, ServiceTokenOutput
from service_accounts.throttles import IntrospectRateThrottle


class ServiceTokenApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=ServiceTokenInput, responses={200: ServiceTokenOutput, **ERRORS}, tags=["service accounts"],
        description="Client credentials of a service account -> an access token with `role: service` and no "
                    "`sid`. A bad id or secret, or a disabled account: 401 `invalid_client`.",
    )
    @rate_limit("service_token")  # each request checks a client secret: per client IP
    def post(self, request):
        data = ServiceTokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.service_token_obtain(client_id=data.validated_data["clientId"],
                                               client_secret=data.validated_data["clientSecret"], request=request)
        return secret_response({"accessToken": issued.token, "tokenType": "Bearer", "expiresIn": issued.expires_in})


class IntrospectApi(APIView):
    accepts_service_tokens = True
    permission_classes = [IsServiceAccount]
    throttle_classes = [IntrospectRateThrottle]

    @extend_schema(
        request=IntrospectInput, responses={200: IntrospectOutput, **ERRORS}, tags=["service accounts"],
        description="RFC 7662 style, for resource servers (Bearer: a service token; user tokens get 403 "
                    "`permission_denied`). `{\"active\": true, ...claims}` while the provider would accept the "
                    "token, `{\"active\": false}` for an invalid, expired or revoked one.",
    )
    def post(self, request):
        data = IntrospectInput(data=request.data)
        data.is_valid(raise_exception=True)
        return secret_response(services.token_introspect(token=data.validated_data["token"]))
