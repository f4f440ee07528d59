from rest_framework import serializers

from core.fields import SingleLineCharField, StrictBooleanField, StrictCharField, StrictUUIDField


class WebAuthnCredentialField(serializers.DictField):
    """A PublicKeyCredential in the WebAuthn JSON serialization (``toJSON()``): an object; its content is
    py_webauthn's to check (a malformed one is an invalid_passkey, audited like any other refusal)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        if len(str(data)) > 16_384:
            raise serializers.ValidationError("Too large.")
        return data


class PasskeyOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)


class PasskeysOutput(serializers.Serializer):
    passkeys = PasskeyOutput(many=True)


class RegisterVerifyInput(serializers.Serializer):
    credential = WebAuthnCredentialField(help_text="RegistrationResponseJSON (PublicKeyCredential.toJSON()).")
    name = SingleLineCharField(max_length=64, required=False, allow_blank=True, default="")
    ceremonyId = StrictUUIDField(required=False, default=None, allow_null=True,
                                 help_text="Optional: the ceremony is also found by the challenge it answers.")


class RenameInput(serializers.Serializer):
    name = SingleLineCharField(max_length=64)


class CeremonyOutput(serializers.Serializer):
    ceremonyId = serializers.UUIDField()
    options = serializers.DictField(help_text="PublicKeyCredentialRequestOptionsJSON.")


class LoginVerifyInput(serializers.Serializer):
    ceremonyId = StrictUUIDField()
    credential = WebAuthnCredentialField(help_text="AuthenticationResponseJSON (PublicKeyCredential.toJSON()).")
    rememberMe = StrictBooleanField(required=False, default=False)
    deviceId = StrictCharField(max_length=128, required=False, allow_blank=True, default="")
    deviceName = SingleLineCharField(max_length=128, required=False, allow_blank=True, default="")
