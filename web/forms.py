"""Page forms: shape only. The rules (password policy, non-enumerating answers) live in the services."""

from django import forms

from core.errors import ApiError


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


class LoginForm(WebForm):
    email = forms.CharField(label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(label="Password", max_length=128, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    remember_me = forms.BooleanField(label="Stay signed in", required=False)


class RegisterForm(WebForm):
    name = forms.CharField(label="Name", max_length=150, required=False,
                           widget=forms.TextInput(attrs={"autocomplete": "name"}))
    email = forms.EmailField(label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(label="Password", max_length=128, strip=False,
                               help_text="12 to 128 characters; not a common password.",
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class EmailForm(WebForm):
    email = forms.EmailField(label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))


class TokenForm(WebForm):
    token = forms.CharField(max_length=512, widget=forms.HiddenInput)


class ResetPasswordForm(WebForm):
    token = forms.CharField(max_length=512, widget=forms.HiddenInput)
    password = forms.CharField(label="New password", max_length=128, strip=False,
                               help_text="12 to 128 characters; not a common password.",
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class ProfileForm(WebForm):
    name = forms.CharField(label="Name", max_length=150, required=False,
                           widget=forms.TextInput(attrs={"autocomplete": "name"}))


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


class SessionChoiceForm(WebForm):
    session = forms.UUIDField(widget=forms.HiddenInput)


class ReauthenticateForm(WebForm):
    password = forms.CharField(label="Password", max_length=128, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class DeleteAccountForm(WebForm):
    confirm = forms.BooleanField(label="I understand that my account and its data are deleted for good",
                                 required=True)
