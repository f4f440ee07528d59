from rest_framework import serializers

from accounts.models import User
from core.fields import PasswordField, StrictBooleanField, StrictCharField, StrictEmailField


class UserOutput(serializers.ModelSerializer):
    emailVerified = serializers.BooleanField(source="email_verified")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = User
        fields = ["id", "email", "name", "role", "emailVerified", "createdAt"]
        # Output only: every key is always present (the schema marks them required).
        extra_kwargs = {"name": {"required": True}, "role": {"required": True}}


class RegisterInput(serializers.Serializer):
    email = StrictEmailField()
    password = PasswordField()
    name = StrictCharField(max_length=150, allow_blank=True, required=False, default="")


class EmailInput(serializers.Serializer):
    email = StrictEmailField()


class TokenInput(serializers.Serializer):
    token = StrictCharField(max_length=512)


class LoginInput(serializers.Serializer):
    email = StrictCharField(max_length=254)  # any string: an invalid email simply fails to log in
    password = PasswordField()
    rememberMe = StrictBooleanField(required=False, default=False)
    deviceId = StrictCharField(max_length=128, required=False, allow_blank=True, default="")
    deviceName = StrictCharField(max_length=128, required=False, allow_blank=True, default="")
    # The signed value a previous login returned: this device stays exempt from lockouts (security/lockout.py).
    deviceToken = StrictCharField(max_length=512, required=False, allow_blank=True, default="")


class MeUpdateInput(serializers.Serializer):
    name = StrictCharField(max_length=150, allow_blank=True)


class ResetPasswordInput(serializers.Serializer):
    token = StrictCharField(max_length=512)
    password = PasswordField()


class ChangePasswordInput(serializers.Serializer):
    currentPassword = PasswordField()
    newPassword = PasswordField()


class ChangeEmailInput(serializers.Serializer):
    newEmail = StrictEmailField()
    # Optional: a client that asks for the password anyway may send it; a wrong one changes nothing.
    password = PasswordField(required=False)


class PasswordInput(serializers.Serializer):
    password = PasswordField()


class DetailOutput(serializers.Serializer):
    detail = serializers.CharField()


class UserEnvelopeOutput(serializers.Serializer):
    user = UserOutput()


class ReauthenticateOutput(serializers.Serializer):
    reauthenticatedAt = serializers.DateTimeField()
    freshUntil = serializers.DateTimeField()

