"""Every form a page renders carries the account it was rendered for (issue 14).

A browser can be signed in to several accounts and switch between them in any tab. A form rendered
while account A was active, submitted after another tab switched to account B, would act as B:
revoke B's sessions, rename B's organization, sign B out. So:

- ``{% csrf_token %}`` renders, next to Django's token, a hidden ``form_account`` field with the id
  of the account the page was rendered for ("" when signed out). The tag is replaced for every
  template of the site and the admin (``TEMPLATES[...]["OPTIONS"]["builtins"]``:
  web/templatetags/form_account.py), so no form can forget it.
- ``FormAccountMiddleware`` (web/middleware.py) compares it, before any view runs, with the account
  this browser is signed in as now, on every request CSRF protects; a mismatch is answered with a
  page (409) saying what happened, and audited (``web.form.account_mismatch``).
- Sign-in, adding an account, every switch and sign-out rotate the CSRF token
  (sessions_app/browser.py, ``BrowserState``), so a form of another tab also fails Django's CSRF
  check; the CSRF failure page (``web.form_refusals.csrf_failure``) then says which of the two happened.

A request without the field (an API client, a script with the CSRF token) is not refused for that:
only a form we rendered carries it, and ours always do (tests/web/test_form_account_binding.py).
"""

from __future__ import annotations

FIELD = "form_account"


def current_account(request) -> str | None:
    """The id of the account this browser is signed in as now ("" when signed out), or None for a
    request that did not pass the browser-session middleware."""
    browser = getattr(request, "browser", None)
    if browser is None:
        return None
    user = browser.user()
    return str(user.pk) if user is not None else ""


def sent_account(request) -> str | None:
    """The ``form_account`` the submitted form carries, or None when it has none. A form with two
    different values is treated as carrying one that matches nothing."""
    try:
        values = request.POST.getlist(FIELD)
    except Exception:  # an unreadable or oversized body: the view (or Django) answers for that
        return None
    if not values:
        return None
    return values[0] if all(v == values[0] for v in values) else "\x00"


def account_mismatch(request) -> tuple[str, str] | None:
    """(account the form was rendered for, account signed in now) when they differ, else None."""
    sent = sent_account(request)
    if sent is None:
        return None
    current = current_account(request)
    if current is None or sent == current:
        return None
    return sent, current
