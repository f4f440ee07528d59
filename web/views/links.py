"""Landing pages of the security mails' links: unlock sign-in (lockout) and "this wasn't me"
(new sign-in). GET only shows a button (web.pages.link_landing); the POST spends the token."""

from __future__ import annotations

from django.views.decorators.http import require_http_methods

from flows import incident
from security import lockout as security_lockout
from web import services
from web.decorators import page_rate_limit
from web.pages import link_landing, link_token_apply, message


@require_http_methods(["GET", "POST"])
@page_rate_limit("unlock")
def account_unlock(request):
    """The lockout mail's link (POST /api/v1/auth/unlock's service): lifts the lock for this address
    and makes this browser a known device of the account."""
    if request.method == "GET":
        return link_landing(request, title="Unlock sign-in",
                             text="Sign-in to your account was paused after failed attempts. Unlock it for "
                                  "this device?", button="Unlock sign-in", action="/account/unlock")
    failure, device_token = link_token_apply(request, security_lockout.lockout_unlock)
    if failure is not None:
        return failure
    response = message(request, "Sign-in unlocked", "You can sign in again from this device.",
                        link=("/login", "Sign in"))
    services.device_cookie_set(response, services.device_tokens_add(services.device_tokens_read(request), device_token))
    return response


@require_http_methods(["GET", "POST"])
@page_rate_limit("not_me")
def account_not_me(request):
    """The new sign-in mail's "this wasn't me" link (POST /api/v1/auth/not-me's service)."""
    if request.method == "GET":
        return link_landing(request, title="This wasn't me",
                             text="Sign out every device, disable your current password and email you a link "
                                  "to set a new one?", button="Secure my account", action="/account/not-me")
    failure, _ = link_token_apply(request, incident.not_me_report)
    if failure is not None:
        return failure
    return message(request, "Your account is secured",
                    "Every device was signed out and your password was disabled. Check your inbox for a link "
                    "to set a new one.", link=("/forgot-password", "Send the link again"))
