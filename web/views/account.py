"""The account pages: profile, password, re-authentication (step-up), deletion, security activity,
and the email change with its two mailed links (confirm, revert)."""

from __future__ import annotations

from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services as accounts
from accounts.app_settings import app_settings as account_settings
from audit.selectors import security_events_for
from core.errors import ApiError
from core.fields import int_param
from flows import account_deletion, email_change, passwords
from mfa.services import totp_enabled
from passkeys.services import passkey_count
from security.app_settings import app_settings as security_settings
from security.serializers import VISIBLE_CONTEXT
from security.stepup import SensitiveAction
from sessions_app.browser import cookie_cache_ok
from web import forms, services
from web.decorators import page_rate_limit, signed_in, step_up
from web.pages import link_landing, link_token_apply, message, page, safe_next, to_login


@cookie_cache_ok
@require_GET
def account(request):
    """Only needs the user: answered from the cookie cache without a query while it is fresh."""
    if not request.user.is_authenticated:
        return to_login(request)
    return page(request, "account", profile=forms.ProfileForm(initial={"name": request.user.name}),
                 password_form=forms.ChangePasswordForm())


@require_POST
@signed_in
def account_profile(request):
    row = request.browser.row
    form = forms.ProfileForm(request.POST)
    if form.is_valid():
        accounts.user_update(user=row.user, name=form.cleaned_data["name"], request=request)
        return page(request, "account", profile=form, password_form=forms.ChangePasswordForm(),
                     notice="Your profile is saved.")
    return page(request, "account", profile=form, password_form=forms.ChangePasswordForm())


@require_POST
@signed_in
@step_up(SensitiveAction.PASSWORD_CHANGE, back="/account")
@page_rate_limit("change_password", per_user=True)
def account_password(request):
    row = request.browser.row
    form = forms.ChangePasswordForm(request.POST)
    if form.is_valid():
        try:
            passwords.password_change(user=row.user, session=row, request=request,
                                     current_password=form.cleaned_data["current_password"],
                                     new_password=form.cleaned_data["new_password"])
        except ApiError as exc:
            form.add_api_error(exc)
        else:
            return page(request, "account", profile=forms.ProfileForm(initial={"name": row.user.name}),
                         password_form=forms.ChangePasswordForm(),
                         notice="Your password is changed. Every other session was signed out.")
    return page(request, "account", profile=forms.ProfileForm(initial={"name": row.user.name}),
                 password_form=form)


@require_http_methods(["GET", "POST"])
@signed_in
@page_rate_limit("reauthenticate", per_user=True)  # its own budget: not the login page's (per IP)
def account_reauthenticate(request):
    """Confirm the password again (the service of POST /api/v1/auth/reauthenticate), then back to next=."""
    row = request.browser.row
    nxt = safe_next(request)
    if request.method == "POST" and "credential" in request.POST:  # "Use a passkey instead" (passkeys.js)
        return _reauthenticate_with_passkey(request, row, nxt)
    form = forms.ReauthenticateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            passwords.user_reauthenticate(user=row.user, session=row, password=form.cleaned_data["password"],
                                         code=form.cleaned_data["code"], request=request)
        except ApiError as exc:
            form.add_api_error(exc)
        else:
            return redirect(nxt)
    return _reauthenticate_page(request, row, form=form, next=nxt)


def _reauthenticate_with_passkey(request, row, nxt: str):
    answer = forms.PasskeyAnswerForm(request.POST)
    error = "This passkey could not be used."
    if answer.is_valid() and answer.cleaned_data["ceremony_id"] is not None:
        try:
            passwords.user_reauthenticate(user=row.user, session=row, ceremony_id=answer.cleaned_data["ceremony_id"],
                                         credential=answer.cleaned_data["credential"], request=request)
        except ApiError as exc:
            error = exc.message
        else:
            return redirect(nxt)
    return _reauthenticate_page(request, row, form=forms.ReauthenticateForm(), next=nxt, passkey_error=error)


def _reauthenticate_page(request, row, **context):
    """The page; for a user with passkeys, with request options for them (a JSON data block)."""
    passkey = None
    if passkey_count(row.user):
        options = passwords.reauthenticate_passkey_options(user=row.user)
        passkey = {"ceremonyId": options.ceremony_id, "options": options.options}
    return page(request, "reauthenticate", totp=totp_enabled(row.user), passkey=passkey, **context)


@require_http_methods(["GET", "POST"])
@signed_in
@step_up(SensitiveAction.ACCOUNT_DELETE)
def account_delete(request):
    """Delete the account (the service of DELETE /api/v1/auth/me) after a confirmed POST; then this
    browser forgets it (another account signed in here, if any, takes over)."""
    row = request.browser.row
    form = forms.DeleteAccountForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            account_deletion.user_delete(user=row.user, request=request)
        except ApiError as exc:  # the only owner of an organization (409 last_owner): nothing changed
            return message(request, "Your account was not deleted", exc.message, status=exc.status_code,
                            link=("/organizations", "Your organizations"))
        services.browser_forget_current(request)
        return message(request, "Account deleted",
                        "Your account is deleted and every session of it was signed out.",
                        link=("/account", "Continue") if request.browser.row is not None else ("/register",
                                                                                            "Create an account"))
    return page(request, "delete_account", form=form)


@require_GET
@signed_in
def account_security(request):
    """The user's own security activity (the selector of GET /api/v1/auth/me/security-events), newest first."""
    try:
        number = int_param(request.GET.get("page"), name="page", default=1, minimum=1, maximum=10_000)
    except ApiError as exc:
        return message(request, "No such page", exc.fields["page"][0], status=400,
                        link=("/account/security", "Your security activity"))
    size = security_settings.SECURITY_EVENTS_PAGE_SIZE
    rows = list(security_events_for(request.browser.row.user)[(number - 1) * size: number * size + 1])
    events = [{"row": r, "details": {k: v for k, v in (r.context or {}).items() if k in VISIBLE_CONTEXT}}
              for r in rows[:size]]
    return page(request, "security", events=events, page=number, has_next=len(rows) > size,
                 previous_page=number - 1 if number > 1 else None)


EMAIL_CHANGE_SENT = ("We sent a link to {email}. Your account keeps its current address until you open that link "
                     "(it works for {hours} hours). We also told your current address about the change.")


@require_http_methods(["GET", "POST"])
@signed_in
@step_up(SensitiveAction.EMAIL_CHANGE)
@page_rate_limit("change_email", per_user=True, mail_to="new_email")
def account_email(request):
    """Ask to change the email address (the service of POST /api/v1/auth/change-email); step-up and the
    current password."""
    row = request.browser.row
    form = forms.ChangeEmailForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            email_change.email_change_request(user=row.user, session=row, new_email=form.cleaned_data["new_email"],
                                          password=form.cleaned_data["password"], request=request)
        except ApiError as exc:
            form.add_api_error(exc)
        else:
            hours = int(account_settings.EMAIL_CHANGE_TTL.total_seconds() // 3600)
            return message(request, "Check the inbox of the new address",
                            EMAIL_CHANGE_SENT.format(email=form.cleaned_data["new_email"].strip().lower(), hours=hours),
                            link=("/account", "Back to your account"))
    return page(request, "change_email", form=form, revert_days=account_settings.EMAIL_CHANGE_REVERT_TTL.days)


@require_http_methods(["GET", "POST"])
def account_email_confirm(request):
    """The link mailed to the new address (POST /api/v1/auth/confirm-email-change's service); GET only
    asks, so a mail scanner's fetch changes nothing."""
    if request.method == "GET":
        return link_landing(request, title="Confirm your new email address",
                             text="Use this address for your account from now on? Your other sessions will be "
                                  "signed out.", button="Confirm new address", action="/account/email/confirm")
    failure, user = link_token_apply(request, email_change.email_change_confirm)
    if failure is not None:
        return failure
    # Loaded after the change, so this browser's cookie cache gets the new address.
    signed_in_here = request.browser.row is not None and request.browser.row.user_id == user.pk
    return message(request, "Email address changed",
                    f"Your account now uses {user.email}. Every other session of it was signed out.",
                    link=("/account", "Your account") if signed_in_here else ("/login", "Sign in"))


@require_http_methods(["GET", "POST"])
@page_rate_limit("not_me")
def account_email_revert(request):
    """The link mailed to the old address when a change was applied (POST
    /api/v1/auth/revert-email-change's service); GET only asks, so a mail scanner's fetch changes nothing."""
    if request.method == "GET":
        return link_landing(request, title="Undo the email change",
                             text="Give your account this address back? Every device will be signed out, the "
                                  "current password stops working, and we email this address a link to choose a "
                                  "new one.", button="Restore my address", action="/account/email/revert")
    failure, user = link_token_apply(request, email_change.email_change_revert)
    if failure is not None:
        return failure
    return message(request, "Your email address is back",
                    f"Your account uses {user.email} again. Every session was signed out and the password was "
                    f"disabled: we sent {user.email} a link to choose a new one.",
                    link=("/forgot-password", "Send the link again"))
