from rest_framework import serializers

from core.fields import OneTimeCodeField, RecoveryCodeField, StrictBooleanField, StrictCharField


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
    trustDevice = StrictBooleanField(required=False, default=False)

    def validate(self, attrs):
        if bool(attrs["code"]) == bool(attrs["recoveryCode"]):
            raise serializers.ValidationError({"code": ["Send either code or recoveryCode."]})
        return attrs


class TrustedDeviceOutput(serializers.Serializer):
    id = serializers.UUIDField()
    label = serializers.CharField()
    ipAddress = serializers.CharField(source="ip_address", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)
    expiresAt = serializers.DateTimeField(source="expires_at")


class TrustedDevicesOutput(serializers.Serializer):
    trustedDevices = TrustedDeviceOutput(many=True)
