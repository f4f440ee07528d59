"""Browser pages: each view parses its form, calls one service, renders (templates/web/)."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from django.apps import apps
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from user_agents import parse as parse_user_agent

from accounts import services as accounts
from config.api.errors import ApiError
from sessions_app import selectors
from sessions_app import services as sessions
from sessions_app.browser import cookie_cache_ok
from sessions_app.models import RevokeReason
from web import forms, services
from web.app_settings import app_settings

ACCEPTED = "If the address can be used, we have sent an email with the next step."


def safe_next(request, default: str = "/account") -> str:
    """``next=`` only to this site or a host in WEB_NEXT_ALLOWED_HOSTS (never javascript:, //evil)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = {request.get_host(), *app_settings.NEXT_ALLOWED_HOSTS}
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts=allowed, require_https=request.is_secure()):
        return target
    return default


def _to_login(request):
    return redirect("/login?" + urlencode({"next": request.get_full_path()}))


def signed_in(view):
    """The page needs the session row (writes, lists): load it, or send the visitor to /login."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.browser.row is None:
            return _to_login(request)
        return view(request, *args, **kwargs)

    return wrapper


def page_rate_limit(scope: str, *, also_by: str | None = None):
    """The API's rate limits for a page's POST (same scope, same counters: security/ratelimit.py, issue 4),
    answered as a page with 429 and Retry-After. A no-op until the security app is installed."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method == "POST" and apps.is_installed("security"):
                from security.ratelimit import ratelimit_hit

                value = (request.POST.get(also_by) or "").strip().lower()[:254] if also_by else ""
                try:
                    ratelimit_hit(request=request, scope=scope)
                    if value:
                        ratelimit_hit(request=request, scope=scope, value=f"{also_by}:{value}")
                except ApiError as exc:
                    response = _message(request, "Too many attempts", exc.message, status=exc.status_code)
                    for name, header in exc.headers.items():
                        response[name] = header
                    return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def _page(request, template, status=200, **context):
    return render(request, f"web/{template}.html", context, status=status)


def _message(request, title, text, status=200, **context):
    return _page(request, "message", status=status, title=title, text=text, **context)


# --- sign in / out ---------------------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
@page_rate_limit("login")
def login(request):
    adding = request.GET.get("add") == "1" or request.POST.get("add") == "1"
    nxt = safe_next(request)
    if request.method == "GET" and request.browser.row is not None and not adding:
        return redirect(nxt)
    form = forms.LoginForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.browser_login(request, email=data["email"], password=data["password"],
                                   remember_me=data["remember_me"])
        except ApiError as exc:
            form.add_api_error(exc)
            response = _page(request, "login", status=exc.status_code if exc.status_code == 429 else 200,
                             form=form, next=nxt, adding=adding, unverified=exc.code == "email_not_verified")
            for name, header in exc.headers.items():  # lockout: Retry-After
                response[name] = header
            return response
        return redirect(nxt)
    return _page(request, "login", status=status, form=form, next=nxt, adding=adding)


@require_POST
def logout(request):
    services.browser_logout(request)
    if request.browser.row is not None:  # another account of this browser took over
        return redirect(safe_next(request, "/account"))
    return redirect("/login")


@require_http_methods(["GET", "POST"])
@page_rate_limit("register")
def register(request):
    form = forms.RegisterForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            accounts.user_register(request=request, **form.cleaned_data)
        except ApiError as exc:
            form.add_api_error(exc)
        else:
            return _message(request, "Check your inbox",
                            "Check your inbox to confirm your email address.")
    return _page(request, "register", form=form)


@require_http_methods(["GET", "POST"])
def verify_email(request):
    """GET only shows a button: mail scanners fetch links, and a fetch must not use the token."""
    if request.method == "GET":
        form = forms.TokenForm(initial={"token": request.GET.get("token", "")})
        return _page(request, "verify_email", form=form, has_token=bool(request.GET.get("token")))
    form = forms.TokenForm(request.POST)
    if form.is_valid():
        try:
            accounts.email_verify(token=form.cleaned_data["token"], request=request)
        except ApiError as exc:
            return _message(request, "This link does not work", exc.message, status=400, show_resend=True)
        return _message(request, "Email confirmed", "Your email address is confirmed. You can sign in now.",
                        link=("/login", "Sign in"))
    return _message(request, "This link does not work", "This link is invalid or has already been used.",
                    status=400, show_resend=True)


@require_http_methods(["GET", "POST"])
@page_rate_limit("resend_verification", also_by="email")
def resend_verification(request):
    form = forms.EmailForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        accounts.verification_resend(email=form.cleaned_data["email"], request=request)
        return _message(request, "Check your inbox", ACCEPTED)
    return _page(request, "email_form", form=form, title="Send the confirmation link again",
                 button="Send link", action="/verify-email/resend")


@require_http_methods(["GET", "POST"])
@page_rate_limit("forgot_password", also_by="email")
def forgot_password(request):
    form = forms.EmailForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        accounts.password_forgot(email=form.cleaned_data["email"], request=request)
        return _message(request, "Check your inbox", ACCEPTED)
    return _page(request, "email_form", form=form, title="Reset your password", button="Send reset link",
                 action="/forgot-password")


@require_http_methods(["GET", "POST"])
def reset_password(request):
    if request.method == "GET":
        form = forms.ResetPasswordForm(initial={"token": request.GET.get("token", "")})
        return _page(request, "reset_password", form=form)
    form = forms.ResetPasswordForm(request.POST)
    if form.is_valid():
        try:
            accounts.password_reset(token=form.cleaned_data["token"], password=form.cleaned_data["password"],
                                    request=request)
        except ApiError as exc:
            if exc.code in ("invalid_token", "token_expired"):
                return _message(request, "This link does not work", exc.message, status=400,
                                link=("/forgot-password", "Request a new link"))
            form.add_api_error(exc)
        else:
            return _message(request, "Password changed",
                            "Your password is changed and every session was signed out. Sign in again.",
                            link=("/login", "Sign in"))
    return _page(request, "reset_password", form=form)


# --- account -----------------------------------------------------------------------------------------
@cookie_cache_ok
@require_GET
def account(request):
    """Only needs the user: answered from the cookie cache without a query while it is fresh."""
    if not request.user.is_authenticated:
        return _to_login(request)
    return _page(request, "account", profile=forms.ProfileForm(initial={"name": request.user.name}),
                 password_form=forms.ChangePasswordForm())


@require_POST
@signed_in
def account_profile(request):
    row = request.browser.row
    form = forms.ProfileForm(request.POST)
    if form.is_valid():
        accounts.user_update(user=row.user, name=form.cleaned_data["name"], request=request)
        return _page(request, "account", profile=form, password_form=forms.ChangePasswordForm(),
                     notice="Your profile is saved.")
    return _page(request, "account", profile=form, password_form=forms.ChangePasswordForm())


@require_POST
@signed_in
def account_password(request):
    row = request.browser.row
    form = forms.ChangePasswordForm(request.POST)
    if form.is_valid():
        try:
            accounts.password_change(user=row.user, session=row, request=request,
                                     current_password=form.cleaned_data["current_password"],
                                     new_password=form.cleaned_data["new_password"])
        except ApiError as exc:
            form.add_api_error(exc)
        else:
            return _page(request, "account", profile=forms.ProfileForm(initial={"name": row.user.name}),
                         password_form=forms.ChangePasswordForm(),
                         notice="Your password is changed. Every other session was signed out.")
    return _page(request, "account", profile=forms.ProfileForm(initial={"name": row.user.name}),
                 password_form=form)


def _session_rows(request):
    current = request.browser.row
    rows = []
    for session in selectors.sessions_active_for(current.user):
        ua = parse_user_agent(session.user_agent) if session.user_agent else None
        rows.append({
            "session": session,
            "current": session.pk == current.pk,
            "browser": f"{ua.browser.family} {ua.browser.version_string}".strip() if ua else "",
            "os": f"{ua.os.family} {ua.os.version_string}".strip() if ua else "",
            "label": session.device_name or services.device_label(session.user_agent) or "Unknown device",
        })
    rows.sort(key=lambda r: not r["current"])  # this device first
    return rows


@require_GET
@signed_in
def account_sessions(request):
    return _page(request, "sessions", rows=_session_rows(request), notice=request.GET.get("done") and {
        "revoked": "The session was signed out.", "others": "Every other session was signed out.",
    }.get(request.GET["done"]))


@require_POST
@signed_in
def account_session_revoke(request, session_id):
    current = request.browser.row
    session = selectors.session_of_user(current.user, session_id)
    if session is None:
        return _message(request, "Not found", "No such session.", status=404)
    if session.pk == current.pk:
        services.browser_logout(request)
        return redirect("/login")
    sessions.session_revoke(session=session, reason=RevokeReason.USER_REVOKED, request=request, actor=current.user)
    return redirect("/account/sessions?done=revoked")


@require_POST
@signed_in
def account_sessions_revoke_others(request):
    current = request.browser.row
    sessions.sessions_revoke_all(user=current.user, reason=RevokeReason.OTHERS_REVOKED, request=request,
                                 actor=current.user, keep=current)
    return redirect("/account/sessions?done=others")


# --- several accounts ----------------------------------------------------------------------------------
@require_GET
@signed_in
def accounts_list(request):
    from sessions_app.app_settings import app_settings as session_settings

    others = [row for _, row in request.browser.other_rows()]
    return _page(request, "accounts", current=request.browser.row, others=others,
                 can_add=len(others) + 1 < session_settings.MAX_BROWSER_ACCOUNTS,
                 limit=session_settings.MAX_BROWSER_ACCOUNTS)


@require_POST
@signed_in
def accounts_switch(request):
    form = forms.SessionChoiceForm(request.POST)
    if not form.is_valid() or not services.browser_switch(request, session_id=form.cleaned_data["session"]):
        return _message(request, "Not found", "That account is not signed in on this browser.", status=404)
    return redirect(safe_next(request, "/account"))


@require_POST
@signed_in
def accounts_sign_out(request):
    form = forms.SessionChoiceForm(request.POST)
    if form.is_valid() and str(form.cleaned_data["session"]) == str(request.browser.row.pk):
        services.browser_logout(request)
        return redirect("/accounts" if request.browser.row is not None else "/login")
    if not form.is_valid() or not services.browser_logout_other(request, session_id=form.cleaned_data["session"]):
        return _message(request, "Not found", "That account is not signed in on this browser.", status=404)
    return redirect("/accounts")


# --- admin -----------------------------------------------------------------------------------------------
@require_GET
def admin_login(request):
    """The admin signs in through /login like everyone else (same policy, lockout and audit)."""
    if request.browser.row is not None:
        if request.browser.row.user.is_staff:
            return redirect(safe_next(request, "/admin/"))
        return _message(request, "Staff only", "This account cannot use the administration pages.", status=403)
    return redirect("/login?" + urlencode({"next": safe_next(request, "/admin/")}))
