"""Session API: the endpoints that answer or end a device session: login, refresh, logout,
switch-organization, list, revoke."""

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound
from core.responses import secret_response
from core.schema import ERRORS
from core.views import PublicApi
from flows import login
from flows.sign_out import session_sign_out, sessions_sign_out_others
from security.ratelimit import rate_limit
from sessions_app.authentication import AccessContext, request_session
from sessions_app import selectors, services
from sessions_app.serializers import (
    LoginInput,
    LoginOutput,
    MfaRequiredOutput,
    RefreshInput,
    SessionsOutput,
    SwitchOrganizationInput,
    TokenPairOutput,
    mfa_required_data,
    refresh_data,
    sessions_data,
    signed_in_data,
    token_pair_data,
)
from sessions_app.services import session_logout


LOGIN_RESULT = PolymorphicProxySerializer(component_name="LoginResult", serializers=[LoginOutput, MfaRequiredOutput],
                                         resource_type_field_name=None)


class LoginApi(PublicApi):
    @extend_schema(request=LoginInput, responses={200: LOGIN_RESULT, **ERRORS}, tags=["accounts"],
                   description="200: a TokenPair, or for a user with a second factor (and no trusted-device "
                               "token) {mfaRequired, mfaToken, methods, expiresIn}: answer with POST mfa/verify.")
    @rate_limit("login")
    def post(self, request):
        data = LoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        pair = login.user_login(
            email=v["email"], password=v["password"], remember_me=v["rememberMe"], device_id=v["deviceId"],
            device_name=v["deviceName"], device_token=v["deviceToken"],
            trusted_device_token=v["trustedDeviceToken"], request=request,
        )
        if isinstance(pair, login.SecondFactorRequired):  # no session, no token until mfa/verify
            return secret_response(mfa_required_data(pair))
        return secret_response(signed_in_data(pair, request=request, replaces=v["deviceToken"]))


class LogoutApi(APIView):
    @extend_schema(request=None, responses={204: None, **ERRORS}, tags=["sessions"])
    def post(self, request):
        session_logout(session=request_session(request), request=request)
        return Response(status=204)


class RefreshApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=RefreshInput, responses={200: TokenPairOutput, **ERRORS}, tags=["sessions"])
    def post(self, request):
        return secret_response(refresh_data(request.data, request=request))


class SessionsActiveApi(APIView):
    @extend_schema(responses={200: SessionsOutput, **ERRORS}, tags=["sessions"])
    def get(self, request):
        return Response(self.bearer_fast_get(request.user, request_session(request)))

    @staticmethod
    def bearer_fast_load(claims: dict, now):
        """The caller's session and the list in one statement, for the bearer fast path (its ``sessions``)."""
        session, sessions = selectors.session_and_live_sessions_for_claims(claims, now)
        return session, {"sessions": sessions}

    @staticmethod
    def bearer_fast_get(user, session, sessions=None) -> dict:
        """What GET answers (also before DRF for a bearer token: sessions_app.middleware.BearerFastPathMiddleware,
        with ``sessions`` loaded by ``bearer_fast_load``)."""
        if sessions is None:
            sessions = selectors.sessions_active_list(user)
        return sessions_data(sessions, current_session_id=getattr(session, "pk", None))


class SessionRevokeApi(APIView):
    @extend_schema(request=None, responses={204: None, **ERRORS}, tags=["sessions"])
    def delete(self, request, session_id):
        session = selectors.session_of_user(request.user, session_id)
        if session is None:
            raise NotFound("No such session.")
        # Through the account flow: that device's lockout exemption ends with it (docs/security.md).
        session_sign_out(user=request.user, session=session, request=request)
        return Response(status=204)


class SessionsRevokeOthersApi(APIView):
    @extend_schema(request=None, responses={204: None, **ERRORS}, tags=["sessions"])
    def post(self, request):
        # A security-state change: links mailed so far and other devices' exemptions end too (docs/security.md).
        sessions_sign_out_others(user=request.user, keep=request_session(request), request=request)
        return Response(status=204)


class SwitchOrganizationApi(APIView):
    @extend_schema(operation_id="auth_switch_organization",
                   summary="Make an organization active on this session (new pair with org claims)",
                   request=SwitchOrganizationInput, responses={200: TokenPairOutput, **ERRORS}, tags=["sessions"])
    def post(self, request):
        data = SwitchOrganizationInput(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.session_switch_organization(session=request_session(request), request=request,
                                                    organization_id=data.validated_data["organizationId"],
                                                    refresh_token=isinstance(request.auth, AccessContext))
        return secret_response(token_pair_data(pair))
