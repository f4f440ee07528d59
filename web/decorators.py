"""Decorators of the pages: signed in, the API's rate limits answered as a page, step-up (one rule
with the API: security.stepup)."""

from __future__ import annotations

from functools import wraps

from django.apps import apps

from core.errors import ApiError
from security.ratelimit import address_normalize, request_limits_hit
from security.stepup import step_up_redirect
from web.pages import message, to_login


def signed_in(view):
    """The page needs the session row (writes, lists): load it, or send the visitor to /login."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.browser.row is None:
            return to_login(request)
        return view(request, *args, **kwargs)

    return wrapper


def page_rate_limit(scope: str, *, per_user: bool = False, mail_to: str | None = None, owner_proof=None):
    """The API's rate limits for a page's POST (same scope, same counters and the same sequence:
    security.ratelimit.request_limits_hit), answered as a page with 429 and Retry-After. ``per_user``:
    counted per signed-in user instead of per client IP (put it under @signed_in). ``mail_to``: the
    form field with an address the page mails; ``owner_proof(request, address)``: the owner's own
    share (as for the API). A no-op until the security app is installed."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method == "POST" and apps.is_installed("security"):
                address = address_normalize(request.POST.get(mail_to)) if mail_to else None
                try:
                    request_limits_hit(request=request, scope=scope,
                                       user=request.browser.row.user if per_user else None, address=address,
                                       owner=bool(address and owner_proof and owner_proof(request, address)))
                except ApiError as exc:
                    response = message(request, "Too many attempts", exc.message, status=exc.status_code)
                    for name, header in exc.headers.items():
                        response[name] = header
                    return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def step_up(action, back: str | None = None):
    """The page does a sensitive action (``security.stepup.SensitiveAction``, the API's list and rule:
    a password entry within AUTH_REAUTH_MAX_AGE_SECONDS, the session's ``reauthenticated_at``, set at
    sign-in and by re-authentication, never by activity). Otherwise the refusal is audited as on the
    API and the browser goes to /account/reauthenticate and comes back to ``back`` (default: this
    page). Put it under @signed_in."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            request.device_session = request.browser.row
            stale = step_up_redirect(request=request, action=action, back=back or request.path)
            if stale is not None:
                return stale
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
