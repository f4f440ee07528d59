"""Browser pages: each view parses its form, calls one service, renders (templates/web/)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services as accounts
from audit.selectors import security_events_for
from core.errors import ApiError
from core.fields import ascii_int, int_param
from core.request_meta import user_agent_describe
from flows import account_deletion, email_change, incident, passwords, registration, sign_out
from security import lockout as security_lockout
from security.app_settings import app_settings as security_settings
from security.stepup import SensitiveAction
from sessions_app import selectors
from sessions_app.browser import cookie_cache_ok
from web import forms, services
from web.decorators import page_rate_limit, signed_in, step_up
from web.pages import message, page, safe_next, to_login
from web.app_settings import app_settings

ACCEPTED = "If the address can be used, we have sent an email with the next step."


def browser_proves_owner(request, address: str) -> bool:
    """Page owner proof (forgot-password): this browser has a signed-in session of the account with
    that address, or keeps a known-device token of it (the cookie the login page sets)."""
    from security.lockout import known_device_valid

    rows = [request.browser.row, *(row for _, row in request.browser.other_rows())]
    if any(row is not None and row.user.email == address for row in rows):
        return True
    return any(known_device_valid(token=token, email=address, request=request)
               for token in services.device_tokens_read(request))


def _minutes(seconds: str) -> int:
    """Whole minutes, at least 1, from a Retry-After value in seconds."""
    value = ascii_int(str(seconds), maximum=10**9)
    return max(1, -(-value // 60)) if value is not None else 1


def _set_device_cookie(response, value: str) -> None:
    """The known-device tokens (security/lockout.py): long-lived, HttpOnly, sent back with page logins."""
    from sessions_app.app_settings import app_settings as session_settings

    response.set_cookie(app_settings.DEVICE_COOKIE, value,
                        max_age=int(security_settings.KNOWN_DEVICE_MAX_AGE.total_seconds()),
                        secure=session_settings.COOKIE_SECURE, httponly=True, samesite="Lax", path="/")


# --- sign in / out ---------------------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
@page_rate_limit("login")
def login(request):
    adding = request.GET.get("add") == "1" or request.POST.get("add") == "1"
    nxt = safe_next(request)
    if request.method == "GET" and request.browser.row is not None and not adding:
        return redirect(nxt)
    form = forms.LoginForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            row = services.browser_login(request, email=data["email"], password=data["password"],
                                         remember_me=data["remember_me"])
        except ApiError as exc:
            form.add_api_error(exc)
            retry = exc.headers.get("Retry-After", "")
            response = page(request, "login", status=exc.status_code if exc.status_code == 429 else 200,
                             form=form, next=nxt, adding=adding, unverified=exc.code == "email_not_verified",
                             locked_minutes=_minutes(retry) if exc.code == "account_locked" else None)
            for name, header in exc.headers.items():  # lockout: Retry-After
                response[name] = header
            return response
        response = redirect(nxt)
        _set_device_cookie(response, services.device_tokens_merge(request, row))
        return response
    return page(request, "login", status=status, form=form, next=nxt, adding=adding)


@require_POST
def logout(request):
    services.browser_logout(request)
    if request.browser.row is not None:  # another account of this browser took over
        return redirect(safe_next(request, "/account"))
    return redirect("/login")


@require_http_methods(["GET", "POST"])
@page_rate_limit("register", mail_to="email")
def register(request):
    form = forms.RegisterForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            accounts.user_register(request=request, **form.cleaned_data)
        except ApiError as exc:
            form.add_api_error(exc)
        else:
            return message(request, "Check your inbox",
                            "Check your inbox to confirm your email address.")
    return page(request, "register", form=form)


@require_http_methods(["GET", "POST"])
def verify_email(request):
    """GET only shows the form: mail scanners fetch links, and a fetch must not use the token. An account
    that never signed in gets its password here (flows.registration.email_verify): the field is shown
    when the link's account needs it, and a POST without it is answered with the field's error."""
    if request.method == "GET":
        token = request.GET.get("token", "")
        return _verify_page(request, forms.VerifyEmailForm(initial={"token": token}), token)
    form = forms.VerifyEmailForm(request.POST)
    if not form.is_valid():
        if form.has_error("token"):
            return message(request, "This link does not work", _BAD_LINK, status=400, show_resend=True)
        return _verify_page(request, form, form.data.get("token", ""))
    try:
        registration.email_verify(token=form.cleaned_data["token"], password=form.cleaned_data["password"] or None,
                              request=request)
    except ApiError as exc:
        if exc.code in ("password_required", "validation_error"):  # the link still works: ask again
            form.add_api_error(exc)
            return _verify_page(request, form, form.cleaned_data["token"])
        return message(request, "This link does not work", exc.message, status=400, show_resend=True)
    return message(request, "Email confirmed", "Your email address is confirmed. You can sign in now.",
                    link=("/login", "Sign in"))


def _verify_page(request, form, token: str):
    preview = registration.email_verification_preview(token=token) if token else None
    return page(request, "verify_email", form=form, has_token=bool(token),
                 needs_password=bool(preview and preview.needs_password) or form.has_error("password"),
                 organizations=preview.organizations if preview else ())


@require_http_methods(["GET", "POST"])
@page_rate_limit("resend_verification", mail_to="email")
def resend_verification(request):
    form = forms.EmailForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        accounts.verification_resend(email=form.cleaned_data["email"], request=request)
        return message(request, "Check your inbox", ACCEPTED)
    return page(request, "email_form", form=form, title="Send the confirmation link again",
                 button="Send link", action="/verify-email/resend")


@require_http_methods(["GET", "POST"])
@page_rate_limit("forgot_password", mail_to="email", owner_proof=browser_proves_owner)
def forgot_password(request):
    form = forms.EmailForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        accounts.password_forgot(email=form.cleaned_data["email"], request=request)
        return message(request, "Check your inbox", ACCEPTED)
    return page(request, "email_form", form=form, title="Reset your password", button="Send reset link",
                 action="/forgot-password")


@require_http_methods(["GET", "POST"])
@page_rate_limit("reset_password")
def reset_password(request):
    if request.method == "GET":
        form = forms.ResetPasswordForm(initial={"token": request.GET.get("token", "")})
        return page(request, "reset_password", form=form)
    form = forms.ResetPasswordForm(request.POST)
    if form.is_valid():
        try:
            passwords.password_reset(token=form.cleaned_data["token"], password=form.cleaned_data["password"],
                                    request=request)
        except ApiError as exc:
            if exc.code in ("invalid_token", "token_expired"):
                return message(request, "This link does not work", exc.message, status=400,
                                link=("/forgot-password", "Request a new link"))
            form.add_api_error(exc)
        else:
            return message(request, "Password changed",
                            "Your password is changed and every session was signed out. Sign in again.",
                            link=("/login", "Sign in"))
    return page(request, "reset_password", form=form)


# --- account -----------------------------------------------------------------------------------------
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


def _session_rows(request):
    current = request.browser.row
    rows = []
    for session in selectors.sessions_active_for(current.user):
        described = user_agent_describe(session.user_agent)
        rows.append({
            "session": session,
            "current": session.pk == current.pk,
            "browser": described.browser,
            "os": described.os,
            "label": session.device_name or described.label or "Unknown device",
        })
    rows.sort(key=lambda r: not r["current"])  # this device first
    return rows


@require_GET
@signed_in
def account_sessions(request):
    return page(request, "sessions", rows=_session_rows(request), notice=request.GET.get("done") and {
        "revoked": "The session was signed out.", "others": "Every other session was signed out.",
    }.get(request.GET["done"]))


@require_POST
@signed_in
def account_session_revoke(request, session_id):
    current = request.browser.row
    session = selectors.session_of_user(current.user, session_id)
    if session is None:
        return message(request, "Not found", "No such session.", status=404)
    if session.pk == current.pk:
        services.browser_logout(request)
        return redirect("/login")
    sign_out.session_sign_out(user=current.user, session=session, request=request)
    return redirect("/account/sessions?done=revoked")


@require_POST
@signed_in
def account_sessions_revoke_others(request):
    current = request.browser.row
    sign_out.sessions_sign_out_others(user=current.user, keep=current, request=request)
    return redirect("/account/sessions?done=others")


@require_http_methods(["GET", "POST"])
@signed_in
@page_rate_limit("reauthenticate", per_user=True)  # its own budget: not the login page's (per IP)
def account_reauthenticate(request):
    """Confirm the password again (the service of POST /api/v1/auth/reauthenticate), then back to next=."""
    row = request.browser.row
    nxt = safe_next(request)
    form = forms.ReauthenticateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            passwords.user_reauthenticate(user=row.user, session=row, password=form.cleaned_data["password"],
                                         request=request)
        except ApiError as exc:
            form.add_api_error(exc)
        else:
            return redirect(nxt)
    return page(request, "reauthenticate", form=form, next=nxt)


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
    from security.serializers import VISIBLE_CONTEXT

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
    from accounts.app_settings import app_settings as account_settings

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
        return _link_landing(request, title="Confirm your new email address",
                             text="Use this address for your account from now on? Your other sessions will be "
                                  "signed out.", button="Confirm new address", action="/account/email/confirm")
    failure, user = _link_token_apply(request, email_change.email_change_confirm)
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
        return _link_landing(request, title="Undo the email change",
                             text="Give your account this address back? Every device will be signed out, the "
                                  "current password stops working, and we email this address a link to choose a "
                                  "new one.", button="Restore my address", action="/account/email/revert")
    failure, user = _link_token_apply(request, email_change.email_change_revert)
    if failure is not None:
        return failure
    return message(request, "Your email address is back",
                    f"Your account uses {user.email} again. Every session was signed out and the password was "
                    f"disabled: we sent {user.email} a link to choose a new one.",
                    link=("/forgot-password", "Send the link again"))


def _link_landing(request, *, title: str, text: str, button: str, action: str):
    """GET of a mailed link only shows a button: mail scanners prefetch links, a fetch must not act."""
    form = forms.TokenForm(initial={"token": request.GET.get("token", "")})
    return page(request, "link_confirm", form=form, title=title, text=text, button=button, action=action,
                 has_token=bool(request.GET.get("token")))


_BAD_LINK = "This link is invalid or has already been used."


def _link_token_apply(request, service):
    """The POST of a mailed-link page: validate the token form and call ``service(token=, request=)``.
    Returns (error page or None, the service's result)."""
    form = forms.TokenForm(request.POST)
    if not form.is_valid():
        return message(request, "This link does not work", _BAD_LINK, status=400), None
    try:
        return None, service(token=form.cleaned_data["token"], request=request)
    except ApiError as exc:  # invalid_token / token_expired (400), email_taken (409)
        return message(request, "This link does not work", exc.message, status=exc.status_code), None


@require_http_methods(["GET", "POST"])
@page_rate_limit("unlock")
def account_unlock(request):
    """The lockout mail's link (POST /api/v1/auth/unlock's service): lifts the lock for this address
    and makes this browser a known device of the account."""
    if request.method == "GET":
        return _link_landing(request, title="Unlock sign-in",
                             text="Sign-in to your account was paused after failed attempts. Unlock it for "
                                  "this device?", button="Unlock sign-in", action="/account/unlock")
    failure, device_token = _link_token_apply(request, security_lockout.lockout_unlock)
    if failure is not None:
        return failure
    response = message(request, "Sign-in unlocked", "You can sign in again from this device.",
                        link=("/login", "Sign in"))
    _set_device_cookie(response, services.device_tokens_add(services.device_tokens_read(request), device_token))
    return response


@require_http_methods(["GET", "POST"])
@page_rate_limit("not_me")
def account_not_me(request):
    """The new sign-in mail's "this wasn't me" link (POST /api/v1/auth/not-me's service)."""
    if request.method == "GET":
        return _link_landing(request, title="This wasn't me",
                             text="Sign out every device, disable your current password and email you a link "
                                  "to set a new one?", button="Secure my account", action="/account/not-me")
    failure, _ = _link_token_apply(request, incident.not_me_report)
    if failure is not None:
        return failure
    return message(request, "Your account is secured",
                    "Every device was signed out and your password was disabled. Check your inbox for a link "
                    "to set a new one.", link=("/forgot-password", "Send the link again"))


# --- several accounts ----------------------------------------------------------------------------------
@require_GET
@signed_in
def accounts_list(request):
    from sessions_app.app_settings import app_settings as session_settings

    others = [row for _, row in request.browser.other_rows()]
    return page(request, "accounts", current=request.browser.row, others=others,
                 can_add=len(others) + 1 < session_settings.MAX_BROWSER_ACCOUNTS,
                 limit=session_settings.MAX_BROWSER_ACCOUNTS)


@require_POST
@signed_in
def accounts_switch(request):
    form = forms.SessionChoiceForm(request.POST)
    if not form.is_valid() or not services.browser_switch(request, session_id=form.cleaned_data["session"]):
        return message(request, "Not found", "That account is not signed in on this browser.", status=404)
    return redirect(safe_next(request, "/account"))


@require_POST
@signed_in
def accounts_sign_out(request):
    form = forms.SessionChoiceForm(request.POST)
    if form.is_valid() and str(form.cleaned_data["session"]) == str(request.browser.row.pk):
        services.browser_logout(request)
        return redirect("/accounts" if request.browser.row is not None else "/login")
    if not form.is_valid() or not services.browser_logout_other(request, session_id=form.cleaned_data["session"]):
        return message(request, "Not found", "That account is not signed in on this browser.", status=404)
    return redirect("/accounts")


# --- admin -----------------------------------------------------------------------------------------------
@require_GET
def admin_login(request):
    """The admin signs in through /login like everyone else (same policy, lockout and audit)."""
    if request.browser.row is not None:
        if request.browser.row.user.is_staff:
            return redirect(safe_next(request, "/admin/"))
        return message(request, "Staff only", "This account cannot use the administration pages.", status=403)
    return redirect("/login?" + urlencode({"next": safe_next(request, "/admin/")}))
