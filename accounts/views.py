"""Account API: each view parses its input, calls one service, renders."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.serializers import (
    ChangeEmailInput,
    ChangePasswordInput,
    DetailOutput,
    EmailInput,
    ForgotPasswordInput,
    MeUpdateInput,
    ReauthenticateInput,
    ReauthenticateOutput,
    RegisterB2BInput,
    RegisterInput,
    ResetPasswordInput,
    TokenInput,
    UserEnvelopeOutput,
    UserOutput,
    VerifyEmailInput,
    user_data,
)
from core.schema import ERRORS, ErrorBody, error_response
from core.views import PublicApi
from flows import account_deletion, email_change, passwords, registration
from sessions_app.authentication import request_session
from security.lockout import device_token_proves_owner
from security.ratelimit import rate_limit
from security.stepup import SensitiveAction, step_up_for

REGISTERED = "Check your inbox to confirm your email address."
ACCEPTED = "If the address can be used, we have sent an email with the next step."
EMAIL_CHANGE_ACCEPTED = ("Check the inbox of the new address: the change takes effect when you open the link we "
                         "sent there.")


ERROR_409 = OpenApiResponse(ErrorBody, description="email_taken")


class RegisterApi(PublicApi):
    @extend_schema(request=RegisterInput, responses={202: DetailOutput, **ERRORS}, tags=["accounts"])
    @rate_limit("register", mail_to="email")
    def post(self, request):
        data = RegisterInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_register(request=request, **data.validated_data)
        return Response({"detail": REGISTERED}, status=202)


class RegisterB2BApi(PublicApi):
    @extend_schema(operation_id="auth_register_b2b",
                   summary="Register; the organization is created, with you as owner, once the email is verified",
                   request=RegisterB2BInput, responses={202: DetailOutput, **ERRORS}, tags=["accounts"])
    @rate_limit("register", mail_to="email")  # register's budget: one per client for creating accounts
    def post(self, request):
        data = RegisterB2BInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        registration.user_register_b2b(email=v["email"], password=v["password"], name=v["name"],
                                       organization_name=v["organizationName"], request=request)
        return Response({"detail": REGISTERED}, status=202)


class VerifyEmailApi(PublicApi):
    @extend_schema(description="An account that has never signed in needs `password` (400 password_required "
                               "otherwise, the link stays usable): it becomes the account's password, replacing "
                               "the one given at registration. Ignored for an account that has signed in.",
                   request=VerifyEmailInput, responses={200: UserEnvelopeOutput, **ERRORS}, tags=["accounts"])
    def post(self, request):
        data = VerifyEmailInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = registration.email_verify(token=data.validated_data["token"],
                                         password=data.validated_data.get("password"), request=request)
        return Response({"user": UserOutput(user).data})


class ResendVerificationApi(PublicApi):
    @extend_schema(request=EmailInput, responses={202: DetailOutput, **ERRORS}, tags=["accounts"])
    @rate_limit("resend_verification", mail_to="email")
    def post(self, request):
        data = EmailInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.verification_resend(email=data.validated_data["email"], request=request)
        return Response({"detail": ACCEPTED}, status=202)


class MeApi(APIView):
    permission_classes = [IsAuthenticated, step_up_for(SensitiveAction.ACCOUNT_DELETE, "DELETE")]

    @extend_schema(responses={200: UserOutput, **ERRORS}, tags=["accounts"])
    def get(self, request):
        return Response(self.bearer_fast_get(request.user, request_session(request)))

    @staticmethod
    def bearer_fast_get(user, session) -> dict:
        """What GET answers (also before DRF for a bearer token: sessions_app.middleware.BearerFastPathMiddleware)."""
        return user_data(user)

    @extend_schema(request=MeUpdateInput, responses={200: UserOutput, **ERRORS}, tags=["accounts"])
    def patch(self, request):
        data = MeUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_update(user=request.user, name=data.validated_data["name"], request=request)
        return Response(UserOutput(user).data)

    @extend_schema(request=None, responses={204: None, 409: error_response("last_owner: the only owner of an "
                                                                          "organization"), **ERRORS},
                   tags=["accounts"])
    def delete(self, request):
        """Delete the account; needs a password entry within AUTH_REAUTH_MAX_AGE_SECONDS."""
        account_deletion.user_delete(user=request.user, request=request)
        return Response(status=204)


class ForgotPasswordApi(PublicApi):
    @extend_schema(request=ForgotPasswordInput, responses={202: DetailOutput, **ERRORS}, tags=["accounts"],
                   description="Mails a reset link (or a notice to an unknown address); 202 always. Limited per "
                               "client IP and per address (docs/security.md); `deviceToken` (from a login of "
                               "that account) counts the request in the owner's own share instead, so strangers "
                               "asking for the same address cannot block the owner.")
    @rate_limit("forgot_password", mail_to="email", owner_proof=device_token_proves_owner)
    def post(self, request):
        data = ForgotPasswordInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_forgot(email=data.validated_data["email"], request=request)
        return Response({"detail": ACCEPTED}, status=202)


class ResetPasswordApi(PublicApi):
    @extend_schema(request=ResetPasswordInput, responses={204: None, **ERRORS}, tags=["accounts"])
    @rate_limit("reset_password")
    def post(self, request):
        data = ResetPasswordInput(data=request.data)
        data.is_valid(raise_exception=True)
        passwords.password_reset(request=request, **data.validated_data)
        return Response(status=204)


class ChangePasswordApi(APIView):
    permission_classes = [IsAuthenticated, step_up_for(SensitiveAction.PASSWORD_CHANGE)]

    @extend_schema(request=ChangePasswordInput, responses={204: None, **ERRORS}, tags=["accounts"])
    @rate_limit("change_password", per_user=True)
    def post(self, request):
        data = ChangePasswordInput(data=request.data)
        data.is_valid(raise_exception=True)
        passwords.password_change(
            user=request.user, session=request_session(request), request=request,
            current_password=data.validated_data["currentPassword"], new_password=data.validated_data["newPassword"],
        )
        return Response(status=204)


class ChangeEmailApi(APIView):
    """Contract extension (docs/api.md): step-up, then a link to the new address; 202 either way."""

    permission_classes = [IsAuthenticated, step_up_for(SensitiveAction.EMAIL_CHANGE)]

    @extend_schema(operation_id="auth_change_email_create", summary="Ask to change the email address (step-up)",
                   description="Needs a password entry within AUTH_REAUTH_MAX_AGE_SECONDS (else 403 "
                               "reauthentication_required) and the current `password` (400 invalid_password). "
                               "Mails a confirmation link to the new address (or, if it belongs to an account, a "
                               "notice) and tells the old one; the same 202 either way.",
                   request=ChangeEmailInput, responses={202: DetailOutput, **ERRORS}, tags=["accounts"])
    @rate_limit("change_email", per_user=True, mail_to="newEmail")
    def post(self, request):
        data = ChangeEmailInput(data=request.data)
        data.is_valid(raise_exception=True)
        email_change.email_change_request(user=request.user, session=request_session(request), request=request,
                                      new_email=data.validated_data["newEmail"],
                                      password=data.validated_data["password"])
        return Response({"detail": EMAIL_CHANGE_ACCEPTED}, status=202)


class ConfirmEmailChangeApi(PublicApi):
    """Contract extension (docs/api.md): the token from the link mailed to the new address."""

    @extend_schema(operation_id="auth_confirm_email_change_create", summary="Apply a confirmed email change",
                   description="409 email_taken when the address was taken since the request; every session "
                               "except the one that asked for the change is signed out.",
                   request=TokenInput, responses={200: UserEnvelopeOutput, 409: ERROR_409, **ERRORS},
                   tags=["accounts"])
    def post(self, request):
        data = TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = email_change.email_change_confirm(token=data.validated_data["token"], request=request)
        return Response({"user": UserOutput(user).data})


class RevertEmailChangeApi(PublicApi):
    """Contract extension (docs/api.md): the token from the link mailed to the old address after a change."""

    @extend_schema(operation_id="auth_revert_email_change_create", summary="Undo an email change (old address)",
                   description="Gives the account its previous address back, signs out every session, disables "
                               "the password and mails a reset link to the restored address. 409 email_taken when "
                               "the address belongs to another account now (nothing changes).",
                   request=TokenInput, responses={200: UserEnvelopeOutput, 409: ERROR_409, **ERRORS},
                   tags=["accounts"])
    @rate_limit("not_me")  # the "this wasn't me" budget: the same kind of public, token-bearing link
    def post(self, request):
        data = TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = email_change.email_change_revert(token=data.validated_data["token"], request=request)
        return Response({"user": UserOutput(user).data})


class ReauthenticateApi(APIView):
    @extend_schema(request=ReauthenticateInput, responses={
        200: ReauthenticateOutput, 409: error_response("mfa_not_enabled: a code for an account without TOTP"),
        **ERRORS}, tags=["accounts"])
    @rate_limit("reauthenticate", per_user=True)
    def post(self, request):
        data = ReauthenticateInput(data=request.data)
        data.is_valid(raise_exception=True)
        session = request_session(request)
        fresh_until = passwords.user_reauthenticate(user=request.user, session=session, request=request,
                                                   password=data.validated_data["password"],
                                                   code=data.validated_data["code"],
                                                   ceremony_id=data.validated_data["ceremonyId"],
                                                   credential=data.validated_data["credential"])
        return Response(ReauthenticateOutput({"reauthenticatedAt": session.reauthenticated_at,
                                              "freshUntil": fresh_until}).data)
