"""The sessions page: every signed-in device of the account, signing one out, or all the others."""

from __future__ import annotations

from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from core.request_meta import user_agent_describe
from flows import sign_out
from mfa.services import trusted_devices_of
from sessions_app import selectors
from web import services
from web.decorators import signed_in
from web.pages import message, page


def _session_rows(request):
    current = request.browser.row
    rows = []
    for session in selectors.sessions_active_for(current.user):
        described = user_agent_describe(session.user_agent)
        rows.append({
            "session": session,
            "current": session.pk == current.pk,
            "browser": described.browser,
            "os": described.os,
            "label": session.device_name or described.label or "Unknown device",
        })
    rows.sort(key=lambda r: not r["current"])  # this device first
    return rows


@require_GET
@signed_in
def account_sessions(request):
    return page(request, "sessions", rows=_session_rows(request),
                trusted=trusted_devices_of(request.browser.row.user), notice=request.GET.get("done") and {
                    "revoked": "The session was signed out.", "others": "Every other session was signed out.",
                    "untrusted": "That browser or device asks for a two-factor code again.",
                }.get(request.GET["done"]))


@require_POST
@signed_in
def account_session_revoke(request, session_id):
    current = request.browser.row
    session = selectors.session_of_user(current.user, session_id)
    if session is None:
        return message(request, "Not found", "No such session.", status=404)
    if session.pk == current.pk:
        services.browser_logout(request)
        return redirect("/login")
    sign_out.session_sign_out(user=current.user, session=session, request=request)
    return redirect("/account/sessions?done=revoked")


@require_POST
@signed_in
def account_sessions_revoke_others(request):
    current = request.browser.row
    sign_out.sessions_sign_out_others(user=current.user, keep=current, request=request)
    return redirect("/account/sessions?done=others")
