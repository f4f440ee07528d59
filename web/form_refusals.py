"""The pages that refuse a form before its view runs (web/form_account.py): a form rendered for another
account (409) and Django's CSRF failure (``CSRF_FAILURE_VIEW``)."""

from __future__ import annotations

from django.utils.http import url_has_allowed_host_and_scheme

from audit.models import EventType
from web import services
from web.decorators import page_rate_limit
from web.form_account import account_mismatch
from web.pages import message, page


def _back_link(request) -> str:
    """The page the form was on (the Referer, when it is this site), to load it again."""
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()},
                                                   require_https=request.is_secure()):
        return referer
    return "/account" if getattr(request, "browser", None) is not None and request.browser.row else "/login"


@page_rate_limit("api")  # refusals are audited: bounded per client like every other page POST
def form_account_refused(request, *, sent: str, current: str, reason: str):
    """A form rendered for one account, sent while this browser is signed in as another (or signed
    out): nothing is done; 409 with a page that says so, audited (``web.form.account_mismatch``)."""
    services.form_refusal_record(request, event=EventType.FORM_ACCOUNT_MISMATCH, reason=reason, sent=sent,
                                 current=current)
    row = request.browser.row
    emails = {str(other.user_id): other.user.email for _, other in request.browser.other_rows()}
    if row is not None:
        emails[str(row.user_id)] = row.user.email
    return page(request, "form_account_mismatch", status=409, title="This page is out of date",
                 form_email=emails.get(sent), form_signed_out=sent == "", current_email=emails.get(current),
                 back=_back_link(request))


def csrf_failure(request, reason=""):
    """``CSRF_FAILURE_VIEW``. Signing in, switching and signing out rotate the CSRF token, so a form
    of another tab usually ends here: when it was rendered for another account, say that (409, as
    above); otherwise it is an expired or foreign form (403)."""
    mismatch = account_mismatch(request)
    if mismatch is not None:
        return form_account_refused(request, sent=mismatch[0], current=mismatch[1], reason="account_mismatch")
    return _csrf_refused(request, reason=reason)


@page_rate_limit("api")
def _csrf_refused(request, *, reason: str):
    services.form_refusal_record(request, event=EventType.FORM_CSRF_FAILED, reason="csrf", detail=reason[:200])
    return message(request, "This form has expired",
                    "The form was not accepted: it is out of date (you signed in, signed out or switched accounts "
                    "since it was opened) or it did not come from this site. Nothing was changed. Load the page "
                    "again and retry.", status=403, link=(_back_link(request), "Load the page again"))
