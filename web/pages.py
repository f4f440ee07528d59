"""Rendering helpers every page family uses: a template under templates/web/, the message page,
the redirects to sign-in and re-authentication, the one ``next=`` rule, and the two halves of a
mailed link's landing page (GET shows a button, POST spends the token)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from core.errors import ApiError
from security.stepup import reauth_redirect
from web import forms
from web.app_settings import app_settings


def page(request, template, status=200, **context):
    return render(request, f"web/{template}.html", context, status=status)


def message(request, title, text, status=200, **context):
    return page(request, "message", status=status, title=title, text=text, **context)


def safe_next(request, default: str = "/account") -> str:
    """``next=`` only to this site or a host in WEB["NEXT_ALLOWED_HOSTS"] (never javascript:, //evil)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = {request.get_host(), *app_settings.NEXT_ALLOWED_HOSTS}
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts=allowed, require_https=request.is_secure()):
        return target
    return default


def to_login(request):
    return redirect("/login?" + urlencode({"next": request.get_full_path()}))


def to_reauth(request, action: str):
    return reauth_redirect(action)


def link_landing(request, *, title: str, text: str, button: str, action: str):
    """GET of a mailed link only shows a button: mail scanners prefetch links, a fetch must not act."""
    form = forms.TokenForm(initial={"token": request.GET.get("token", "")})
    return page(request, "link_confirm", form=form, title=title, text=text, button=button, action=action,
                 has_token=bool(request.GET.get("token")))


BAD_LINK = "This link is invalid or has already been used."


def link_token_apply(request, service):
    """The POST of a mailed-link page: validate the token form and call ``service(token=, request=)``.
    Returns (error page or None, the service's result)."""
    form = forms.TokenForm(request.POST)
    if not form.is_valid():
        return message(request, "This link does not work", BAD_LINK, status=400), None
    try:
        return None, service(token=form.cleaned_data["token"], request=request)
    except ApiError as exc:  # invalid_token / token_expired (400), email_taken (409)
        return message(request, "This link does not work", exc.message, status=exc.status_code), None
