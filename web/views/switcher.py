"""Several accounts in one browser: the list, switching to another, signing one out."""

from __future__ import annotations

from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from sessions_app.app_settings import app_settings as session_settings
from web import forms, services
from web.decorators import signed_in
from web.pages import message, page, safe_next


@require_GET
@signed_in
def accounts_list(request):
    others = [row for _, row in request.browser.other_rows()]
    return page(request, "accounts", current=request.browser.row, others=others,
                 can_add=len(others) + 1 < session_settings.MAX_BROWSER_ACCOUNTS,
                 limit=session_settings.MAX_BROWSER_ACCOUNTS)


@require_POST
@signed_in
def accounts_switch(request):
    form = forms.SessionChoiceForm(request.POST)
    if not form.is_valid() or not services.browser_switch(request, session_id=form.cleaned_data["session"]):
        return message(request, "Not found", "That account is not signed in on this browser.", status=404)
    return redirect(safe_next(request, "/account"))


@require_POST
@signed_in
def accounts_sign_out(request):
    form = forms.SessionChoiceForm(request.POST)
    if form.is_valid() and str(form.cleaned_data["session"]) == str(request.browser.row.pk):
        services.browser_logout(request)
        return redirect("/accounts" if request.browser.row is not None else "/login")
    if not form.is_valid() or not services.browser_logout_other(request, session_id=form.cleaned_data["session"]):
        return message(request, "Not found", "That account is not signed in on this browser.", status=404)
    return redirect("/accounts")
