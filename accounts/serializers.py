from rest_framework import serializers

from accounts.models import User
from core.fields import (
    OneTimeCodeField,
    OrganizationNameField,
    PasswordField,
    SingleLineCharField,
    StrictCharField,
    StrictEmailField,
    StrictUUIDField,
    datetime_output,
)


class UserOutput(serializers.ModelSerializer):
    """The API's User. The fields below are its schema; ``user_data`` renders it (the same JSON as DRF's
    field-by-field rendering, which builds every field again for every instance: tests/accounts/test_output.py
    holds the two equal)."""

    emailVerified = serializers.BooleanField(source="email_verified")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = User
        fields = ["id", "email", "name", "role", "emailVerified", "createdAt"]
        # Output only: every key is always present (the schema marks them required).
        extra_kwargs = {"name": {"required": True}, "role": {"required": True}}

    def to_representation(self, user):
        return user_data(user)


def user_data(user) -> dict:
    """``UserOutput``'s JSON for ``user``."""
    return {"id": str(user.pk), "email": user.email, "name": user.name, "role": user.role,
            "emailVerified": user.email_verified_at is not None, "createdAt": datetime_output(user.created_at)}


class RegisterInput(serializers.Serializer):
    email = StrictEmailField()
    password = PasswordField()
    name = SingleLineCharField(max_length=150, allow_blank=True, required=False, default="")


class RegisterB2BInput(RegisterInput):
    # register-b2b: register plus the organization to create once the email is verified. (No docstring:
    # it would become the component's description in the OpenAPI document.)
    organizationName = OrganizationNameField()


class EmailInput(serializers.Serializer):
    email = StrictEmailField()


class ForgotPasswordInput(EmailInput):
    # Optional (extension): the deviceToken a login of this account returned. The request is then
    # counted in the owner's own rate-limit share, which strangers cannot spend (docs/security.md).
    deviceToken = StrictCharField(max_length=512, required=False, allow_blank=True, default="")


class TokenInput(serializers.Serializer):
    token = StrictCharField(max_length=512)


class VerifyEmailInput(serializers.Serializer):
    token = StrictCharField(max_length=512)
    # Required when the account has never signed in (400 password_required otherwise): it becomes the
    # account's password, whoever registered the address. Ignored for an account that has signed in.
    password = PasswordField(required=False)


class MeUpdateInput(serializers.Serializer):
    name = SingleLineCharField(max_length=150, allow_blank=True)


class ResetPasswordInput(serializers.Serializer):
    token = StrictCharField(max_length=512)
    password = PasswordField()


class ChangePasswordInput(serializers.Serializer):
    currentPassword = PasswordField()
    newPassword = PasswordField()


class ChangeEmailInput(serializers.Serializer):
    newEmail = StrictEmailField()
    # The account's current password (400 invalid_password when wrong): a fresh session is not enough.
    password = PasswordField()


class PasswordInput(serializers.Serializer):
    password = PasswordField()


class ReauthenticateInput(serializers.Serializer):
    """``password``, or ``code`` (a TOTP code) for a user with two-factor, or a passkey (``ceremonyId``
    and ``credential``): exactly one."""

    password = PasswordField(required=False, allow_blank=True, default="")
    code = OneTimeCodeField(required=False, allow_blank=True, default="",
                           help_text="A code of the authenticator app (users with two-factor), instead of the "
                                     "password.")
    ceremonyId = StrictUUIDField(required=False, default=None, allow_null=True,
                                 help_text="A passkey instead: the ceremony of POST passkeys/reauthenticate/options.")
    credential = serializers.DictField(required=False, default=None, allow_null=True,
                                       help_text="With ceremonyId: AuthenticationResponseJSON.")

    def validate(self, attrs):
        passkey = attrs["ceremonyId"] is not None or attrs["credential"] is not None
        if passkey and (attrs["ceremonyId"] is None or attrs["credential"] is None):
            raise serializers.ValidationError({"credential": ["Send ceremonyId and credential together."]})
        if [bool(attrs["password"]), bool(attrs["code"]), passkey].count(True) != 1:
            raise serializers.ValidationError({"password": ["Send one of password, code, or a passkey."]})
        return attrs


class DetailOutput(serializers.Serializer):
    detail = serializers.CharField()


class UserEnvelopeOutput(serializers.Serializer):
    user = UserOutput()


class ReauthenticateOutput(serializers.Serializer):
    reauthenticatedAt = serializers.DateTimeField()
    freshUntil = serializers.DateTimeField()

