"""Security API: unlock link, "this wasn't me" link, the caller's own security activity."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.selectors import security_events_for
from core.fields import int_param
from core.responses import secret_response
from core.schema import ERRORS
from flows import incident
from security import lockout
from security.app_settings import app_settings
from security.ratelimit import rate_limit
from security.serializers import (
    DeviceTokenOutput,
    LinkTokenInput,
    SecurityEventOutput,
    SecurityEventsOutput,
    UnlockInput,
)


class UnlockApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=UnlockInput, responses={200: DeviceTokenOutput, **ERRORS}, tags=["security"])
    @rate_limit("unlock")
    def post(self, request):
        data = UnlockInput(data=request.data)
        data.is_valid(raise_exception=True)
        device_token = lockout.lockout_unlock(token=data.validated_data["token"], request=request,
                                              device_id=data.validated_data["deviceId"])
        return secret_response({"deviceToken": device_token})


class NotMeApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=LinkTokenInput, responses={204: None, **ERRORS}, tags=["security"])
    @rate_limit("not_me")
    def post(self, request):
        data = LinkTokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        incident.not_me_report(token=data.validated_data["token"], request=request)
        return Response(status=204)


class SecurityEventsApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("page", int), OpenApiParameter("pageSize", int)],
                   responses={200: SecurityEventsOutput, **ERRORS}, tags=["security"])
    def get(self, request):
        page = int_param(request.query_params.get("page"), name="page", default=1, minimum=1, maximum=10_000)
        size = int_param(request.query_params.get("pageSize"), name="pageSize",
                         default=app_settings.SECURITY_EVENTS_PAGE_SIZE, minimum=1, maximum=100)
        rows = list(security_events_for(request.user)[(page - 1) * size: page * size + 1])
        return Response({"events": SecurityEventOutput(rows[:size], many=True).data, "page": page,
                         "pageSize": size, "hasNext": len(rows) > size})
