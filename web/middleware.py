"""Refuse a form rendered for one account and submitted while this browser is signed in as another
(web/form_account.py). After CsrfViewMiddleware (a forged form is its to refuse) and the browser
session middleware (who is signed in now), before any view."""

from __future__ import annotations

from web.form_account import account_mismatch
from web.form_refusals import form_account_refused  # the page (409) and its audit row

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class FormAccountMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Where CSRF applies: the pages and the admin. The API (csrf_exempt DRF views) reads JSON
        # and checks CSRF itself for cookie callers.
        if request.method not in UNSAFE or getattr(view_func, "csrf_exempt", False):
            return None
        mismatch = account_mismatch(request)
        if mismatch is None:
            return None
        return form_account_refused(request, sent=mismatch[0], current=mismatch[1], reason="account_mismatch")
