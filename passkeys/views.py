"""Passkeys API (``/api/v1/auth/passkeys``, CONTRACT.md "Passkeys"): register (fresh session), list,
rename, remove, and the passwordless sign-in. Options and credentials use the WebAuthn JSON
serialization. The second factor with a passkey is ``mfa/passkey/options`` + ``mfa/verify`` (mfa/views.py)."""

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound
from core.responses import secret_response
from core.schema import ERRORS, error_response
from core.views import PublicApi
from flows import passkeys as flows
from flows.login import passkey_login
from flows.passwords import reauthenticate_passkey_options
from passkeys import services
from passkeys.serializers import (
    CeremonyOutput,
    LoginVerifyInput,
    PasskeyOutput,
    PasskeysOutput,
    RegisterVerifyInput,
    RenameInput,
)
from security.ratelimit import rate_limit
from security.stepup import SensitiveAction, step_up_for
from sessions_app.authentication import request_session
from sessions_app.serializers import LoginOutput, signed_in_data

MFA_CHANGE = step_up_for(SensitiveAction.MFA_CHANGE)
MFA_CHANGE_UNSAFE = step_up_for(SensitiveAction.MFA_CHANGE, "PATCH", "DELETE")
NO_SUCH_PASSKEY = "No such passkey."


class RegisterOptionsApi(APIView):
    permission_classes = [IsAuthenticated, MFA_CHANGE]

    @extend_schema(request=None, responses={200: dict, 409: error_response("passkey_limit_reached"), **ERRORS},
                   tags=["passkeys"],
                   description="PublicKeyCredentialCreationOptionsJSON for navigator.credentials.create() "
                               "(PublicKeyCredential.parseCreationOptionsFromJSON). Needs a fresh session.")
    def post(self, request):
        return secret_response(services.registration_options(user=request.user).options)


class RegisterVerifyApi(APIView):
    permission_classes = [IsAuthenticated, MFA_CHANGE]

    @extend_schema(request=RegisterVerifyInput,
                   responses={201: PasskeyOutput, 409: error_response("passkey_limit_reached"), **ERRORS},
                   tags=["passkeys"])
    def post(self, request):
        data = RegisterVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        passkey = flows.passkey_add(user=request.user, session=request_session(request), credential=v["credential"],
                                    name=v["name"], ceremony_id=v["ceremonyId"], request=request)
        return Response(PasskeyOutput(passkey).data, status=201)


class PasskeysApi(APIView):
    @extend_schema(responses={200: PasskeysOutput, **ERRORS}, tags=["passkeys"])
    def get(self, request):
        return Response({"passkeys": PasskeyOutput(services.passkeys_of(request.user), many=True).data})


class PasskeyApi(APIView):
    permission_classes = [IsAuthenticated, MFA_CHANGE_UNSAFE]

    @extend_schema(request=RenameInput, responses={200: PasskeyOutput, **ERRORS}, tags=["passkeys"])
    def patch(self, request, passkey_id):
        data = RenameInput(data=request.data)
        data.is_valid(raise_exception=True)
        passkey = flows.passkey_rename(user=request.user, passkey_id=passkey_id, name=data.validated_data["name"],
                                       request=request)
        if passkey is None:
            raise NotFound(NO_SUCH_PASSKEY)
        return Response(PasskeyOutput(passkey).data)

    @extend_schema(request=None, responses={204: None, **ERRORS}, tags=["passkeys"])
    def delete(self, request, passkey_id):
        if not flows.passkey_remove(user=request.user, session=request_session(request), passkey_id=passkey_id,
                                    request=request):
            raise NotFound(NO_SUCH_PASSKEY)
        return Response(status=204)


class LoginOptionsApi(PublicApi):
    @extend_schema(request=None, responses={200: CeremonyOutput, **ERRORS}, tags=["passkeys"],
                   description="Request options for a passwordless sign-in: empty allowCredentials (the "
                               "authenticator offers its discoverable passkeys), userVerification required.")
    @rate_limit("passkey_login")
    def post(self, request):
        ceremony = services.authentication_options()
        return secret_response({"ceremonyId": ceremony.ceremony_id, "options": ceremony.options})


class LoginVerifyApi(PublicApi):
    @extend_schema(request=LoginVerifyInput, responses={200: LoginOutput, **ERRORS}, tags=["passkeys"],
                   description="200: a TokenPair (amr [\"hwk\", \"user\", \"mfa\"]; no second factor is asked). "
                               "401 invalid_passkey for anything wrong.")
    @rate_limit("passkey_login")
    def post(self, request):
        data = LoginVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        pair = passkey_login(ceremony_id=v["ceremonyId"], credential=v["credential"], remember_me=v["rememberMe"],
                             device_id=v["deviceId"], device_name=v["deviceName"], request=request)
        return secret_response(signed_in_data(pair, request=request))


class ReauthenticateOptionsApi(APIView):
    @extend_schema(request=None, responses={200: CeremonyOutput, **ERRORS}, tags=["passkeys"],
                   description="Extension: request options for step-up with a passkey (the caller's passkeys); "
                               "send ceremonyId and the credential to POST reauthenticate.")
    @rate_limit("reauthenticate", per_user=True)
    def post(self, request):
        ceremony = reauthenticate_passkey_options(user=request.user)
        return secret_response({"ceremonyId": ceremony.ceremony_id, "options": ceremony.options})
