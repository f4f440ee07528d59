"""Shapes of the service-token and introspection endpoints (shape only; the work is in services)."""

from rest_framework import serializers

from core.fields import StrictCharField

TOKEN_MAX_LENGTH = 8192  # far above any token we issue; longer input is refused before any parsing


class ServiceTokenInput(serializers.Serializer):
    clientId = StrictCharField(max_length=64)
    clientSecret = StrictCharField(max_length=512, trim_whitespace=False, style={"input_type": "password"})


class ServiceTokenOutput(serializers.Serializer):
    accessToken = serializers.CharField()
    tokenType = serializers.CharField(help_text='Always "Bearer".')
    expiresIn = serializers.IntegerField(help_text="Seconds until the token expires.")


class IntrospectInput(serializers.Serializer):
    token = StrictCharField(max_length=TOKEN_MAX_LENGTH, trim_whitespace=False)


class IntrospectOutput(serializers.Serializer):
    """RFC 7662: ``active`` and, only when it is true, the token's claims as signed."""

    active = serializers.BooleanField()
    sub = serializers.CharField(required=False, help_text="User id, or the service account's id.")
    role = serializers.CharField(required=False)
    email = serializers.CharField(required=False, help_text="User tokens only.")
    sid = serializers.CharField(required=False, help_text="Session id; user tokens only.")
    clientId = serializers.CharField(required=False, help_text="Service tokens only.")
    secretVersion = serializers.IntegerField(required=False, help_text="Service tokens only.")
    org = serializers.CharField(required=False)
    orgRole = serializers.CharField(required=False)
    iss = serializers.CharField(required=False)
    aud = serializers.CharField(required=False)
    iat = serializers.IntegerField(required=False)
    exp = serializers.IntegerField(required=False)
    jti = serializers.CharField(required=False)
