"""Page forms: shape only. The rules (password policy, non-enumerating answers) live in the services."""

import json

from django import forms

from core.errors import ApiError
from core.fields import StrictIntegerField, ascii_int, single_line_validator


class WebForm(forms.Form):
    """Errors are announced next to their field: ``aria-invalid`` (Django) and ``aria-describedby``
    pointing at the error text. Service errors keyed by API field names map onto form fields."""

    api_fields: dict[str, str] = {}

    def add_error(self, field, error):
        super().add_error(field, error)
        if field and field in self.fields:
            self.fields[field].widget.attrs["aria-describedby"] = f"{self[field].auto_id}-error"

    def add_api_error(self, exc: ApiError) -> None:
        if exc.fields:
            for api_name, messages in exc.fields.items():
                name = self.api_fields.get(api_name, api_name)
                for message in messages:
                    self.add_error(name if name in self.fields else None, message)
        else:
            self.add_error(None, exc.message)


class WholeNumberField(forms.IntegerField):
    """A whole number typed on a page: ASCII digits only (core.fields.ascii_int), so "²", "١٢",
    "1e9" or "-1" are a form error, and a number of any length is bounded before it is converted."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        number = ascii_int(str(value).strip(" "), maximum=self.max_value or StrictIntegerField.MAX_VALUE)
        if number is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return number


class LoginForm(WebForm):
    email = forms.CharField(label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(label="Password", max_length=128, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    remember_me = forms.BooleanField(label="Stay signed in", required=False)


def _name_field():
    """The API's rule for a person's name (accounts/serializers.py): one line, at most 150 characters."""
    return forms.CharField(label="Name", max_length=150, required=False, validators=[single_line_validator],
                           widget=forms.TextInput(attrs={"autocomplete": "name"}))


class RegisterForm(WebForm):
    name = _name_field()
    email = forms.EmailField(label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(label="Password", max_length=128, strip=False,
                               help_text="12 to 128 characters; not a common password.",
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class EmailForm(WebForm):
    email = forms.EmailField(label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))


class TokenForm(WebForm):
    token = forms.CharField(max_length=512, widget=forms.HiddenInput)


class VerifyEmailForm(WebForm):
    """The verification page: an account that never signed in chooses its password here
    (flows.registration.email_verify requires it then; the page shows the field when it is needed)."""

    token = forms.CharField(max_length=512, widget=forms.HiddenInput)
    password = forms.CharField(label="Password", max_length=128, strip=False, required=False,
                               help_text="12 to 128 characters; not a common password.",
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class ResetPasswordForm(WebForm):
    token = forms.CharField(max_length=512, widget=forms.HiddenInput)
    password = forms.CharField(label="New password", max_length=128, strip=False,
                               help_text="12 to 128 characters; not a common password.",
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class ProfileForm(WebForm):
    name = _name_field()


class ChangePasswordForm(WebForm):
    api_fields = {"currentPassword": "current_password", "newPassword": "new_password"}
    current_password = forms.CharField(label="Current password", max_length=128, strip=False,
                                       widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    new_password = forms.CharField(label="New password", max_length=128, strip=False,
                                   help_text="12 to 128 characters; not a common password.",
                                   widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class ChangeEmailForm(WebForm):
    api_fields = {"newEmail": "new_email"}
    new_email = forms.EmailField(label="New email address", max_length=254,
                                 widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(label="Current password", max_length=128, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class SessionChoiceForm(WebForm):
    session = forms.UUIDField(widget=forms.HiddenInput)


class ReauthenticateForm(WebForm):
    """The password, or (a user with two-factor) a code of the authenticator app."""

    password = forms.CharField(label="Password", max_length=128, strip=False, required=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    code = forms.CharField(label="Or a code from your authenticator app", max_length=16, required=False,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))

    def clean(self):
        data = super().clean()
        if bool(data.get("password")) == bool(data.get("code")):
            raise forms.ValidationError("Enter your password or a code (one of them).")
        return data


class SecondFactorForm(WebForm):
    """The second step of a sign-in: a code of the authenticator app, or a recovery code."""

    code = forms.CharField(label="Code from your authenticator app", max_length=16, required=False,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                         "autofocus": True}))
    recovery_code = forms.CharField(label="Or a recovery code", max_length=32, required=False,
                                    widget=forms.TextInput(attrs={"autocomplete": "off"}))
    trust = forms.BooleanField(label="Trust this browser for 30 days", required=False)

    def clean(self):
        data = super().clean()
        if bool(data.get("code")) == bool(data.get("recovery_code")):
            raise forms.ValidationError("Enter the code from your app, or one recovery code.")
        return data


class PasskeyAnswerForm(WebForm):
    """A passkey's answer, filled in by web/static/web/passkeys.js: the ceremony and the credential
    (PublicKeyCredential.toJSON(), as JSON text)."""

    ceremony_id = forms.UUIDField(required=False, widget=forms.HiddenInput)
    credential = forms.CharField(max_length=16_384, widget=forms.HiddenInput)

    def clean_credential(self):
        try:
            value = json.loads(self.cleaned_data["credential"])
        except ValueError:
            raise forms.ValidationError("This passkey could not be used.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("This passkey could not be used.")
        return value


class PasskeyAddForm(PasskeyAnswerForm):
    name = forms.CharField(label="Name", max_length=64, required=False,
                           help_text="So you can tell your passkeys apart, for example \"Work laptop\".")


class PasskeyRenameForm(WebForm):
    name = forms.CharField(label="Name", max_length=64)


class TotpConfirmForm(WebForm):
    code = forms.CharField(label="Code shown by the app", max_length=16,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))


class DeleteAccountForm(WebForm):
    confirm = forms.BooleanField(label="I understand that my account and its data are deleted for good",
                                 required=True)
