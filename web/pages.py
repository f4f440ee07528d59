"""Rendering helpers every page family uses: a template under templates/web/, the message page,
the redirects to sign-in and re-authentication, and the one ``next=`` rule."""

from __future__ import annotations

from urllib.parse import urlencode

from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from web.app_settings import app_settings


def page(request, template, status=200, **context):
    return render(request, f"web/{template}.html", context, status=status)


def message(request, title, text, status=200, **context):
    return page(request, "message", status=status, title=title, text=text, **context)


def safe_next(request, default: str = "/account") -> str:
    """``next=`` only to this site or a host in WEB_NEXT_ALLOWED_HOSTS (never javascript:, //evil)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = {request.get_host(), *app_settings.NEXT_ALLOWED_HOSTS}
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts=allowed, require_https=request.is_secure()):
        return target
    return default


def to_login(request):
    return redirect("/login?" + urlencode({"next": request.get_full_path()}))


def to_reauth(request, action: str):
    return redirect("/account/reauthenticate?" + urlencode({"next": action}))
