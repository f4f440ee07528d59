"""Two-factor pages: the second step of a sign-in (/login/two-factor: a code, a recovery code or a
passkey) and the account's two-factor settings (/account/two-factor: set up an authenticator app with a
QR code, see the recovery codes once, new codes, turn it off; add, rename and remove passkeys). The same
flows as the API (flows/login.py, flows/two_factor.py, flows/passkeys.py). The passkey ceremonies run
in web/static/web/passkeys.js, which posts the browser's answer to these views."""

from __future__ import annotations

import segno
from django.shortcuts import redirect
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST

from core.errors import ApiError
from flows import passkeys as passkey_flows
from flows import two_factor
from flows.login import second_factor_passkey_options
from mfa import services as mfa
from mfa.models import Channel
from passkeys import services as passkeys
from security.stepup import SensitiveAction
from web import forms, services
from web.decorators import page_rate_limit, signed_in, step_up
from web.pages import message, page, safe_next


@require_http_methods(["GET", "POST"])
@page_rate_limit("mfa_verify")
def login_two_factor(request):
    """The code (or a recovery code, or a passkey) of a sign-in whose password passed on /login; "trust
    this browser"."""
    token = services.pending_cookie_read(request)
    nxt = safe_next(request)
    if not token:
        return redirect("/login")
    post = request.POST if request.method == "POST" else None
    with_passkey = post is not None and "credential" in post
    form = forms.SecondFactorForm(None if with_passkey else post)
    answer = forms.PasskeyAnswerForm(post) if with_passkey else None
    if post is None or not (answer or form).is_valid():
        return _second_step_page(request, token, form=form, next=nxt,
                                 passkey_error="This passkey could not be used." if answer is not None else "")
    try:
        if answer is not None:
            done = services.browser_second_factor(
                request, token=token, ceremony_id=answer.cleaned_data["ceremony_id"],
                credential=answer.cleaned_data["credential"], trust=post.get("trust") == "on")
        else:
            data = form.cleaned_data
            done = services.browser_second_factor(request, token=token, code=data["code"].replace(" ", ""),
                                                  recovery_code=data["recovery_code"].strip(), trust=data["trust"])
    except ApiError as exc:
        if exc.code == "mfa_token_invalid":
            response = message(request, "Sign in again", "This sign-in has expired. Sign in again.",
                               status=401, link=("/login", "Sign in"))
            services.pending_cookie_clear(response)
            return response
        if answer is None:
            form.add_api_error(exc)
        response = _second_step_page(request, token, status=exc.status_code if exc.status_code == 429 else 200,
                                     form=form, next=nxt, passkey_error=exc.message if answer is not None else "")
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


def _second_step_page(request, token: str, *, status: int = 200, **context):
    """The second step's page; for a user with passkeys, with request options for them (the script
    reads them from a JSON data block: no inline script)."""
    try:
        options = second_factor_passkey_options(token=token, channel=Channel.PAGE)
    except ApiError:
        options = None
    passkey = None
    if options is not None and options.options.get("allowCredentials"):
        passkey = {"ceremonyId": options.ceremony_id, "options": options.options}
    owner = mfa.challenge_owner(token)
    codes = passkey is None or (owner is not None and mfa.totp_enabled(owner))
    return page(request, "login_two_factor", status=status, passkey=passkey, codes=codes, **context)


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
                confirm_form=context.pop("confirm_form", forms.TotpConfirmForm()),
                passkeys=passkeys.passkeys_of(user), add_form=context.pop("add_form", forms.PasskeyAddForm()),
                **context)


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
            codes = two_factor.totp_enable(user=row.user, session=row, code=form.cleaned_data["code"].replace(" ", ""),
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


@require_POST
@signed_in
@step_up(SensitiveAction.MFA_CHANGE, back="/account/two-factor")
def account_passkey_add(request):
    """The answer of the browser's authenticator to the API's creation options (passkeys.js)."""
    row = request.browser.row
    form = forms.PasskeyAddForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, status=400, add_form=form, error="The passkey was not created. Try again.")
    try:
        data = form.cleaned_data
        passkey = passkey_flows.passkey_add(user=row.user, session=row, credential=data["credential"],
                                            name=data["name"], ceremony_id=data["ceremony_id"], request=request)
    except ApiError as exc:
        return _settings_page(request, status=exc.status_code, add_form=form,
                              error="The passkey was not created. Try again." if exc.code == "invalid_passkey"
                              else exc.message)
    return _settings_page(request, notice=f"Passkey \u201c{passkey.name}\u201d added. You can sign in with it now.")


@require_POST
@signed_in
@step_up(SensitiveAction.MFA_CHANGE, back="/account/two-factor")
def account_passkey_rename(request, passkey_id):
    row = request.browser.row
    form = forms.PasskeyRenameForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, status=400, error="Give the passkey a name (at most 64 characters).")
    if passkey_flows.passkey_rename(user=row.user, passkey_id=passkey_id, name=form.cleaned_data["name"],
                                    request=request) is None:
        return message(request, "Not found", "No such passkey.", status=404)
    return redirect("/account/two-factor")


@require_POST
@signed_in
@step_up(SensitiveAction.MFA_CHANGE, back="/account/two-factor")
def account_passkey_remove(request, passkey_id):
    row = request.browser.row
    if not passkey_flows.passkey_remove(user=row.user, session=row, passkey_id=passkey_id, request=request):
        return message(request, "Not found", "No such passkey.", status=404)
    return _settings_page(request, notice="Passkey removed.")
