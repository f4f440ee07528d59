"""Two-factor API (``/api/v1/auth/mfa/``): status, TOTP setup/confirm/removal, recovery codes, the
second step of a sign-in (``mfa/verify``) and trusted devices. Setting up or removing a factor needs a
fresh session (SensitiveAction.MFA_CHANGE)."""

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound
from core.responses import secret_response
from core.schema import ERRORS, error_response
from core.views import PublicApi
from flows import two_factor
from flows.login import second_factor_passkey_options, second_factor_verify
from mfa import services
from mfa.models import Channel
from passkeys.serializers import CeremonyOutput
from passkeys.services import passkey_count
from mfa.serializers import (
    CodeInput,
    MfaStatusOutput,
    MfaPasskeyOptionsInput,
    MfaVerifyInput,
    RecoveryCodesOutput,
    TotpSetupOutput,
    TrustedDeviceOutput,
    TrustedDevicesOutput,
)
from security.ratelimit import rate_limit
from security.stepup import SensitiveAction, step_up_for
from sessions_app.authentication import request_session
from sessions_app.serializers import LoginOutput, signed_in_data

MFA_CHANGE = step_up_for(SensitiveAction.MFA_CHANGE)


class MfaStatusApi(APIView):
    @extend_schema(responses={200: MfaStatusOutput, **ERRORS}, tags=["two-factor"])
    def get(self, request):
        user = request.user
        return Response({"totp": services.totp_enabled(user), "passkeys": passkey_count(user),
                         "recoveryCodesLeft": services.recovery_codes_left(user),
                         "trustedDevices": services.trusted_devices_of(user).count()})


class TotpSetupApi(APIView):
    permission_classes = [IsAuthenticated, MFA_CHANGE]

    @extend_schema(request=None, responses={200: TotpSetupOutput, 409: error_response("totp_already_enabled"),
                                            **ERRORS}, tags=["two-factor"])
    def post(self, request):
        setup = two_factor.totp_setup(user=request.user, session=request_session(request), request=request)
        return secret_response({"secret": setup.secret, "otpauthUrl": setup.otpauth_url})


class TotpConfirmApi(APIView):
    permission_classes = [IsAuthenticated, MFA_CHANGE]

    @extend_schema(request=CodeInput, responses={
        200: RecoveryCodesOutput, 409: error_response("totp_already_enabled, totp_not_set_up"), **ERRORS},
        tags=["two-factor"])
    @rate_limit("mfa_verify")
    def post(self, request):
        data = CodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        codes = two_factor.totp_enable(user=request.user, session=request_session(request), request=request,
                                       code=data.validated_data["code"])
        return secret_response({"recoveryCodes": codes})


class TotpApi(APIView):
    permission_classes = [IsAuthenticated, MFA_CHANGE]

    @extend_schema(request=None, responses={204: None, 409: error_response("mfa_not_enabled"), **ERRORS},
                   tags=["two-factor"])
    def delete(self, request):
        if not two_factor.totp_disable(user=request.user, session=request_session(request), request=request):
            raise services.MfaNotEnabled()
        return Response(status=204)


class RecoveryCodesApi(APIView):
    permission_classes = [IsAuthenticated, MFA_CHANGE]

    @extend_schema(request=None, responses={200: RecoveryCodesOutput, 409: error_response("mfa_not_enabled"),
                                            **ERRORS}, tags=["two-factor"])
    def post(self, request):
        codes = two_factor.recovery_codes_regenerate(user=request.user, session=request_session(request),
                                                     request=request)
        return secret_response({"recoveryCodes": codes})


class MfaVerifyApi(PublicApi):
    @extend_schema(request=MfaVerifyInput, responses={200: LoginOutput, **ERRORS}, tags=["two-factor"],
                   description="The second step of a login that answered mfaRequired. 200: a TokenPair (plus "
                               "deviceToken, and trustedDeviceToken when trustDevice was true).")
    @rate_limit("mfa_verify")
    def post(self, request):
        data = MfaVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        done = second_factor_verify(token=v["mfaToken"], code=v["code"], recovery_code=v["recoveryCode"],
                                    ceremony_id=v["ceremonyId"], credential=v["credential"],
                                    trust_device=v["trustDevice"], channel=Channel.API, request=request)
        body = signed_in_data(done.pair, request=request)
        if done.trusted_device_token:
            body["trustedDeviceToken"] = done.trusted_device_token
        return secret_response(body)


class MfaPasskeyOptionsApi(PublicApi):
    @extend_schema(request=MfaPasskeyOptionsInput, responses={200: CeremonyOutput, **ERRORS}, tags=["two-factor"],
                   description="Extension: request options for answering a sign-in's mfaToken with a passkey "
                               "(allowCredentials: the user's passkeys); send ceremonyId and the credential to "
                               "mfa/verify. The mfaToken is not spent.")
    @rate_limit("mfa_verify")
    def post(self, request):
        data = MfaPasskeyOptionsInput(data=request.data)
        data.is_valid(raise_exception=True)
        ceremony = second_factor_passkey_options(token=data.validated_data["mfaToken"], channel=Channel.API)
        return secret_response({"ceremonyId": ceremony.ceremony_id, "options": ceremony.options})


class TrustedDevicesApi(APIView):
    @extend_schema(responses={200: TrustedDevicesOutput, **ERRORS}, tags=["two-factor"])
    def get(self, request):
        rows = services.trusted_devices_of(request.user)
        return Response({"trustedDevices": TrustedDeviceOutput(rows, many=True).data})


class TrustedDeviceApi(APIView):
    @extend_schema(request=None, responses={204: None, **ERRORS}, tags=["two-factor"])
    def delete(self, request, device_id):
        if not two_factor.trusted_device_remove(user=request.user, device_id=device_id, request=request):
            raise NotFound("No such trusted device.")
        return Response(status=204)
