import re

from rest_framework import serializers

from accounts.serializers import UserOutput, user_data
from core.fields import (
    PasswordField,
    SingleLineCharField,
    StrictBooleanField,
    StrictCharField,
    StrictUUIDField,
    datetime_output,
)
from security.lockout import known_device_token_issue
from sessions_app.models import DeviceSession
from sessions_app.services import session_refresh


class SessionOutput(serializers.ModelSerializer):
    deviceId = serializers.CharField(source="device_id")
    deviceName = serializers.CharField(source="device_name")
    ipAddress = serializers.CharField(source="ip_address", allow_null=True)
    userAgent = serializers.CharField(source="user_agent")
    createdAt = serializers.DateTimeField(source="created_at")
    lastActivityAt = serializers.DateTimeField(source="last_activity_at")
    expiresAt = serializers.DateTimeField(source="expires_at")
    rememberMe = serializers.BooleanField(source="remember_me")
    amr = serializers.ListField(child=serializers.CharField(), read_only=True,
                                help_text='How the user signed in (RFC 8176): ["pwd"], ["pwd", "otp", "mfa"], '
                                          '["hwk", "user", "mfa"].')
    current = serializers.SerializerMethodField()

    class Meta:
        model = DeviceSession
        fields = ["id", "deviceId", "deviceName", "ipAddress", "userAgent", "createdAt", "lastActivityAt",
                  "expiresAt", "rememberMe", "amr", "current"]

    def get_current(self, obj) -> bool:
        return _is_current(obj, self.context.get("current_session_id"))

    def to_representation(self, session):
        return session_data(session, current=self.get_current(session))


def session_data(session, *, current: bool) -> dict:
    """``SessionOutput``'s JSON for ``session``, without building its fields for every row (a sessions list
    renders many): tests/accounts/test_output.py holds this equal to DRF's field-by-field rendering."""
    return {"id": str(session.pk), "deviceId": session.device_id, "deviceName": session.device_name,
            "ipAddress": None if session.ip_address is None else str(session.ip_address),
            "userAgent": session.user_agent,
            "createdAt": datetime_output(session.created_at),
            "lastActivityAt": datetime_output(session.last_activity_at),
            "expiresAt": datetime_output(session.expires_at), "rememberMe": session.remember_me,
            "amr": [str(method) for method in session.amr], "current": current}


def session_envelope_data(user, session) -> dict:
    """``GET session``'s JSON from the row (its cookie-cache answer is the same, from the snapshot)."""
    return {"user": user_data(user), "session": session_data(session, current=True)}


def _is_current(session, current_session_id) -> bool:
    return current_session_id is not None and str(session.pk) == str(current_session_id)


class SessionsOutput(serializers.Serializer):
    sessions = SessionOutput(many=True)


def sessions_data(sessions, *, current_session_id) -> dict:
    """``SessionsOutput``'s JSON: each session as ``SessionOutput`` renders it with this context."""
    return {"sessions": [session_data(session, current=_is_current(session, current_session_id))
                         for session in sessions]}


class TokenPairOutput(serializers.Serializer):
    accessToken = serializers.CharField()
    refreshToken = serializers.CharField()
    tokenType = serializers.CharField()
    expiresIn = serializers.IntegerField()
    refreshExpiresAt = serializers.DateTimeField()
    user = UserOutput()
    session = SessionOutput()


class LoginOutput(TokenPairOutput):
    deviceToken = serializers.CharField(
        help_text="Send it as deviceToken (with the same deviceId) with later logins from this device: it stays "
                  "exempt from lockouts of this account. Each login answers a new one and ends the one it was "
                  "sent; signing this session out, a password change or reset and \"this wasn't me\" end it "
                  "(docs/security.md).")


class MfaRequiredOutput(serializers.Serializer):
    mfaRequired = serializers.BooleanField(help_text="Always true: no session yet; answer with POST mfa/verify.")
    mfaToken = serializers.CharField(help_text="Single-use, 5 minutes, no credential anywhere else.")
    methods = serializers.ListField(child=serializers.ChoiceField(choices=["totp", "recovery_code", "passkey"]))
    expiresIn = serializers.IntegerField()


class RefreshInput(serializers.Serializer):
    refreshToken = StrictCharField(max_length=512)


# A refresh token as this service writes them (REFRESH_TOKEN_PREFIX and URL-safe base64), within RefreshInput's
# length: a value of this form is one RefreshInput returns unchanged (a string, valid text, nothing to trim,
# not blank, no NUL); any other value is validated by RefreshInput itself (tests/sessions_app/test_refresh_input.py).
_PLAIN_REFRESH_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,512}")


def _refresh_token_input(data) -> str:
    """The ``refreshToken`` of a ``POST refresh`` body, as ``RefreshInput`` validates it; a body whose token
    has the form of one this service issued is taken without building the serializer (the common case)."""
    if type(data) is dict:
        token = data.get("refreshToken")
        if type(token) is str and _PLAIN_REFRESH_TOKEN.fullmatch(token):
            return token
    body = RefreshInput(data=data)
    body.is_valid(raise_exception=True)
    return body.validated_data["refreshToken"]


def signed_in_data(pair, *, request, replaces: str = "") -> dict:
    """The body of a finished sign-in (login, mfa/verify, passkeys/login/verify): the TokenPair and a new
    ``deviceToken`` bound to this device and session (security/lockout.py: send it with later logins to
    stay exempt from lockouts of the account; ``replaces``, the one this login sent, ends)."""
    device_token = known_device_token_issue(user=pair.user, session=pair.session, request=request,
                                            replaces=replaces)
    return {**token_pair_data(pair), "deviceToken": device_token}


def refresh_data(data, *, request) -> dict:
    """``POST refresh``: the body validated (``RefreshInput``), the token exchanged, the new pair's JSON.
    One copy for the view and for its fast path (sessions_app.middleware.RefreshFastPathMiddleware)."""
    return token_pair_data(session_refresh(raw_token=_refresh_token_input(data), request=request))


def token_pair_data(pair) -> dict:
    session = pair.session
    return {
        "accessToken": pair.access_token,
        "refreshToken": pair.refresh_token,
        "tokenType": "Bearer",
        "expiresIn": pair.expires_in,
        "refreshExpiresAt": datetime_output(session.expires_at),
        "user": user_data(session.user),
        "session": session_data(session, current=True),
    }


class LoginInput(serializers.Serializer):
    email = StrictCharField(max_length=254)  # any string: an invalid email simply fails to log in
    password = PasswordField()
    rememberMe = StrictBooleanField(required=False, default=False)
    deviceId = StrictCharField(max_length=128, required=False, allow_blank=True, default="")
    deviceName = SingleLineCharField(max_length=128, required=False, allow_blank=True, default="")
    # The signed value a previous login returned: this device stays exempt from lockouts (security/lockout.py).
    deviceToken = StrictCharField(max_length=512, required=False, allow_blank=True, default="")
    # "Trust this device" (two-factor): the trustedDeviceToken a mfa/verify with trustDevice returned.
    trustedDeviceToken = StrictCharField(max_length=128, required=False, allow_blank=True, default="")


class SwitchOrganizationInput(serializers.Serializer):
    organizationId = StrictUUIDField(allow_null=True, help_text="null leaves the active organization.")


def mfa_required_data(required) -> dict:
    return {"mfaRequired": True, "mfaToken": required.token, "methods": required.methods,
            "expiresIn": required.expires_in}
