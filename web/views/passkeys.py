"""Signing in with a passkey on /login ("Sign in with a passkey"): web/static/web/passkeys.js asks the
API for request options (POST /api/v1/auth/passkeys/login/options), lets the browser's authenticator
answer, and posts the answer here. The same flow as the API (flows.login.passkey_login); the session
is adopted by this browser as a password sign-in's is. Adding, renaming and removing passkeys are on
/account/two-factor (web/views/two_factor.py)."""

from __future__ import annotations

from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from core.errors import ApiError
from web import forms, services
from web.decorators import page_rate_limit
from web.pages import page, safe_next

REFUSED = "This passkey could not be used. Try again, or sign in with your password."


@require_POST
@page_rate_limit("passkey_login")
def login_passkey(request):
    nxt = safe_next(request)
    form = forms.PasskeyAnswerForm(request.POST)
    error = REFUSED
    if form.is_valid() and form.cleaned_data["ceremony_id"] is not None:
        try:
            row = services.browser_passkey_login(request, ceremony_id=form.cleaned_data["ceremony_id"],
                                                 credential=form.cleaned_data["credential"])
        except ApiError as exc:
            error = REFUSED if exc.code == "invalid_passkey" else exc.message
        else:
            response = redirect(nxt)
            services.device_cookie_set(response, services.device_tokens_merge(request, row))
            return response
    return page(request, "login", status=401, form=forms.LoginForm(), next=nxt, adding=False, passkey_error=error)
