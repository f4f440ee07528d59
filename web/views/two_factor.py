"""Two-factor pages: the second step of a sign-in (/login/two-factor) and the account's two-factor
settings (/account/two-factor: set up an authenticator app with a QR code, see the recovery codes once,
new codes, turn it off). The same flows as the API (flows/login.py, flows/two_factor.py)."""

from __future__ import annotations

import segno
from django.shortcuts import redirect
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST

from core.errors import ApiError
from flows import two_factor
from mfa import services as mfa
from security.stepup import SensitiveAction
from web import forms, services
from web.decorators import page_rate_limit, signed_in, step_up
from web.pages import message, page, safe_next


@require_http_methods(["GET", "POST"])
@page_rate_limit("mfa_verify")
def login_two_factor(request):
    """The code (or a recovery code) of a sign-in whose password passed on /login; "trust this browser"."""
    token = services.pending_cookie_read(request)
    nxt = safe_next(request)
    if not token:
        return redirect("/login")
    form = forms.SecondFactorForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            done = services.browser_second_factor(request, token=token, code=data["code"].strip(),
                                                  recovery_code=data["recovery_code"].strip(), trust=data["trust"])
        except ApiError as exc:
            if exc.code == "mfa_token_invalid":
                response = message(request, "Sign in again", "This sign-in has expired. Sign in again.",
                                   status=401, link=("/login", "Sign in"))
                services.pending_cookie_clear(response)
                return response
            form.add_api_error(exc)
            response = page(request, "login_two_factor", status=exc.status_code if exc.status_code == 429 else 200,
                            form=form, next=nxt)
            for name, header in exc.headers.items():
                response[name] = header
            return response
        row = done.pair.session
        response = redirect(nxt)
        services.pending_cookie_clear(response)
        services.device_cookie_set(response, services.device_tokens_merge(request, row))
        if done.trusted_device_token:
            services.trusted_cookie_set(response, request, user_id=row.user_id, token=done.trusted_device_token)
        return response
    return page(request, "login_two_factor", form=form, next=nxt)


def _qr_svg(url: str) -> str:
    """The otpauth URL as an inline SVG (segno, server-side: the secret never leaves for a QR service)."""
    return mark_safe(segno.make(url, error="m").svg_inline(scale=4, dark="#111", light="#fff",  # noqa: S308
                                                          title="QR code for your authenticator app"))


def _settings_page(request, *, status: int = 200, **context):
    user = request.browser.row.user
    pending = None if mfa.totp_enabled(user) else mfa.totp_setup_pending(user=user)
    return page(request, "two_factor", status=status, totp=mfa.totp_enabled(user),
                codes_left=mfa.recovery_codes_left(user), pending=pending,
                qr=_qr_svg(pending.otpauth_url) if pending else None,
                confirm_form=context.pop("confirm_form", forms.TotpConfirmForm()), **context)


@require_http_methods(["GET"])
@signed_in
def account_two_factor(request):
    return _settings_page(request)


@require_POST
@signed_in
@step_up(SensitiveAction.MFA_CHANGE, back="/account/two-factor")
def account_two_factor_setup(request):
    row = request.browser.row
    try:
        two_factor.totp_setup(user=row.user, session=row, request=request)
    except ApiError as exc:
        return _settings_page(request, status=exc.status_code, error=exc.message)
    return redirect("/account/two-factor")


@require_POST
@signed_in
@step_up(SensitiveAction.MFA_CHANGE, back="/account/two-factor")
@page_rate_limit("mfa_verify")
def account_two_factor_confirm(request):
    row = request.browser.row
    form = forms.TotpConfirmForm(request.POST)
    if form.is_valid():
        try:
            codes = two_factor.totp_enable(user=row.user, session=row, code=form.cleaned_data["code"].strip(),
                                           request=request)
        except ApiError as exc:
            form.add_api_error(exc)
        else:
            return _settings_page(request, recovery_codes=codes,
                                  notice="Two-factor sign-in is on. Every other session was signed out.")
    return _settings_page(request, confirm_form=form)


@require_POST
@signed_in
@step_up(SensitiveAction.MFA_CHANGE, back="/account/two-factor")
def account_two_factor_recovery_codes(request):
    row = request.browser.row
    try:
        codes = two_factor.recovery_codes_regenerate(user=row.user, session=row, request=request)
    except ApiError as exc:
        return _settings_page(request, status=exc.status_code, error=exc.message)
    return _settings_page(request, recovery_codes=codes, notice="New recovery codes: the old ones no longer work.")


@require_POST
@signed_in
@step_up(SensitiveAction.MFA_CHANGE, back="/account/two-factor")
def account_two_factor_disable(request):
    row = request.browser.row
    two_factor.totp_disable(user=row.user, session=row, request=request)
    return _settings_page(request, notice="Two-factor sign-in is off.")


@require_POST
@signed_in
def account_trusted_device_revoke(request, device_id):
    row = request.browser.row
    if not two_factor.trusted_device_remove(user=row.user, device_id=device_id, request=request):
        return message(request, "Not found", "No such trusted device.", status=404)
    return redirect("/account/sessions?done=untrusted")
