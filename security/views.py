"""Security API: unlock link, "this wasn't me" link, the caller's own security activity."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApiError
from core.responses import secret_response
from core.schema import ERRORS
from security import devices, lockout, services
from security.app_settings import app_settings
from security.ratelimit import rate_limit
from security.serializers import DeviceTokenOutput, SecurityEventOutput, SecurityEventsOutput, LinkTokenInput


class UnlockApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=LinkTokenInput, responses={200: DeviceTokenOutput, **ERRORS}, tags=["security"])
    @rate_limit("unlock")
    def post(self, request):
        data = LinkTokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        device_token = lockout.lockout_unlock(token=data.validated_data["token"], request=request)
        return secret_response({"deviceToken": device_token})


class NotMeApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=LinkTokenInput, responses={204: None, **ERRORS}, tags=["security"])
    @rate_limit("not_me")
    def post(self, request):
        data = LinkTokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        devices.not_me_report(token=data.validated_data["token"], request=request)
        return Response(status=204)


def _positive_int(value, name: str, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise ApiError("Invalid query parameter.", code="validation_error",
                       fields={name: [f"A whole number from 1 to {maximum}."]})
    return int(value)


class SecurityEventsApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("page", int), OpenApiParameter("pageSize", int)],
                   responses={200: SecurityEventsOutput, **ERRORS}, tags=["security"])
    def get(self, request):
        page = _positive_int(request.query_params.get("page"), "page", 1, 10_000)
        size = _positive_int(request.query_params.get("pageSize"), "pageSize",
                             app_settings.SECURITY_EVENTS_PAGE_SIZE, 100)
        rows = list(services.security_events_for(request.user)[(page - 1) * size: page * size + 1])
        return Response({"events": SecurityEventOutput(rows[:size], many=True).data, "page": page,
                         "pageSize": size, "hasNext": len(rows) > size})
