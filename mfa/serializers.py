from rest_framework import serializers

from core.fields import OneTimeCodeField, RecoveryCodeField, StrictBooleanField, StrictCharField, StrictUUIDField
from passkeys.serializers import WebAuthnCredentialField


class MfaStatusOutput(serializers.Serializer):
    totp = serializers.BooleanField()
    passkeys = serializers.IntegerField()
    recoveryCodesLeft = serializers.IntegerField()
    trustedDevices = serializers.IntegerField()


class TotpSetupOutput(serializers.Serializer):
    secret = serializers.CharField(help_text="Base32; type it into the authenticator app if it cannot scan.")
    otpauthUrl = serializers.CharField(help_text="otpauth://totp/... (the QR code's content).")


class CodeInput(serializers.Serializer):
    code = OneTimeCodeField(help_text="The 6-digit code the authenticator app shows now.")


class RecoveryCodesOutput(serializers.Serializer):
    recoveryCodes = serializers.ListField(child=serializers.CharField(),
                                          help_text="Shown this once; each works once. Keep them offline.")


class MfaVerifyInput(serializers.Serializer):
    mfaToken = StrictCharField(max_length=128)
    code = OneTimeCodeField(required=False, allow_blank=True, default="")
    recoveryCode = RecoveryCodeField(required=False, allow_blank=True, default="")
    ceremonyId = StrictUUIDField(required=False, default=None, allow_null=True,
                                 help_text="A passkey as the second factor: the ceremony of POST mfa/passkey/options.")
    credential = WebAuthnCredentialField(required=False, default=None, allow_null=True,
                                         help_text="With ceremonyId: AuthenticationResponseJSON.")
    trustDevice = StrictBooleanField(required=False, default=False)

    def validate(self, attrs):
        passkey = attrs["ceremonyId"] is not None or attrs["credential"] is not None
        if passkey and (attrs["ceremonyId"] is None or attrs["credential"] is None):
            raise serializers.ValidationError({"credential": ["Send ceremonyId and credential together."]})
        if [bool(attrs["code"]), bool(attrs["recoveryCode"]), passkey].count(True) != 1:
            raise serializers.ValidationError(
                {"code": ["Send one of code, recoveryCode, or ceremonyId and credential."]})
        return attrs


class MfaPasskeyOptionsInput(serializers.Serializer):
    mfaToken = StrictCharField(max_length=128)


class TrustedDeviceOutput(serializers.Serializer):
    id = serializers.UUIDField()
    label = serializers.CharField()
    ipAddress = serializers.CharField(source="ip_address", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)
    expiresAt = serializers.DateTimeField(source="expires_at")


class TrustedDevicesOutput(serializers.Serializer):
    trustedDevices = TrustedDeviceOutput(many=True)
