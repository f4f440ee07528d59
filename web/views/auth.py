"""Sign-in pages: login, logout, registration and its email confirmation, the forgotten-password
mails and the reset, and the admin's way in (through /login)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services as accounts
from core.errors import ApiError
from core.fields import ascii_int
from flows import passwords, registration
from flows.login import SecondFactorRequired
from web import forms, services
from web.decorators import page_rate_limit
from web.pages import BAD_LINK, message, page, safe_next


ACCEPTED = "If the address can be used, we have sent an email with the next step."


def _minutes(seconds: str) -> int:
    """Whole minutes, at least 1, from a Retry-After value in seconds."""
    value = ascii_int(str(seconds), maximum=10**9)
    return max(1, -(-value // 60)) if value is not None else 1


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
        if isinstance(row, SecondFactorRequired):  # no session until the code: /login/two-factor
            response = redirect("/login/two-factor?" + urlencode({"next": nxt}))
            services.pending_cookie_set(response, row.token)
            return response
        response = redirect(nxt)
        services.device_cookie_set(response, services.device_tokens_merge(request, row))
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
            return message(request, "This link does not work", BAD_LINK, status=400, show_resend=True)
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
@page_rate_limit("forgot_password", mail_to="email", owner_proof=services.browser_proves_owner)
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


@require_GET
def admin_login(request):
    """The admin signs in through /login like everyone else (same policy, lockout and audit)."""
    if request.browser.row is not None:
        if request.browser.row.user.is_staff:
            return redirect(safe_next(request, "/admin/"))
        return message(request, "Staff only", "This account cannot use the administration pages.", status=403)
    return redirect("/login?" + urlencode({"next": safe_next(request, "/admin/")}))
