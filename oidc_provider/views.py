"""The OpenID Connect provider on the wire (docs/oidc.md): discovery, authorize, token, userinfo, revocation,
RP-initiated logout, and the /account/apps page. Views parse, call Authlib's server or one service, answer.

Errors: the token and revocation endpoints answer RFC 6749's JSON (``{"error", "error_description"}``);
the authorization endpoint redirects with ``error`` and ``state`` once the client and redirect URI are known
and shows an error page before; userinfo answers the contract's envelope with ``WWW-Authenticate``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.base import OAuth2Error
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.models import EventType
from audit.services import audit_record
from core.errors import ApiError
from core.fields import ascii_int
from identity.services.tokens import TokenError, access_token_verify
from oidc_provider.app_settings import app_settings
from oidc_provider.csp import allow_form_action, redirect_origin
from oidc_provider.models import OidcClient
from oidc_provider.server import printable, server
from oidc_provider.services import authorization
from oidc_provider.services.id_tokens import id_token_hint_claims, rsa_key_ensure, user_claims
from security.ratelimit import ratelimit_hit
from sessions_app.policy import session_refusal
from sessions_app.selectors import session_for_claims
from sessions_app.services import session_logout

PREFIX = "/oidc/"
SCOPES_SUPPORTED = ["openid", "profile", "email", "offline_access"]
CLAIMS_SUPPORTED = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "sid", "at_hash",
                    "email", "email_verified", "name"]


def _base() -> str:
    return app_settings.PUBLIC_URL.rstrip("/")


def _page(request, template, status=200, **context):
    response = render(request, f"web/oidc/{template}.html", context, status=status)
    add_never_cache_headers(response)
    return response


def _error_page(request, title: str, text: str, status: int = 400):
    return _page(request, "error", status=status, title=title, text=text)


def _limited(request, scope: str):
    try:
        ratelimit_hit(request=request, scope=scope)
    except ApiError as exc:
        return exc
    return None


# --- discovery ----------------------------------------------------------------------------------------------
def provider_metadata() -> dict:
    base = _base()
    methods = ["client_secret_basic", "client_secret_post", "none"]
    return {
        "issuer": app_settings.ISSUER,
        "authorization_endpoint": f"{base}{PREFIX}authorize",
        "token_endpoint": f"{base}{PREFIX}token",
        "userinfo_endpoint": f"{base}{PREFIX}userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "revocation_endpoint": f"{base}{PREFIX}revoke",
        "end_session_endpoint": f"{base}{PREFIX}logout",
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": False,
    }


@require_GET
def discovery(request, prefix: str = ""):
    """``{issuer}/.well-known/openid-configuration`` (and this host's root one)."""
    issuer_path = app_settings.ISSUER.split("://", 1)[-1].partition("/")[2].strip("/")
    if prefix.strip("/") not in ("", issuer_path):
        return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)
    rsa_key_ensure()  # the JWKS lists the RS256 key before the first id_token names it
    response = JsonResponse(provider_metadata())
    patch_cache_control(response, public=True, max_age=300)
    return response


# --- authorization endpoint ---------------------------------------------------------------------------------
def _without(request, *prompts, fresh: bool = False) -> str:
    """This authorization request's URL with the given ``prompt`` values removed: where the browser comes
    back after signing in (so ``prompt=login`` is not asked for again: ``auth_time`` is new then). ``fresh``:
    back from a new sign-in, so ``max_age`` is met and dropped too (``max_age=0`` would ask forever)."""
    params = []
    sources = [request.GET] + ([request.POST] if request.method == "POST" else [])  # a POSTed request too
    for key, value in ((k, v) for source in sources for k in source for v in source.getlist(k)):
        if (fresh and key == "max_age") or key in FORM_FIELDS:
            continue
        if key == "prompt":
            value = " ".join(p for p in value.split() if p not in prompts)
            if not value:
                continue
        params.append((key, value))
    return f"{request.path}?{urlencode(params)}"


def _to(path: str, nxt: str, **extra) -> HttpResponse:
    return redirect(f"{path}?{urlencode({**extra, 'next': nxt})}")


def _authorization_refused(request, error: OAuth2Error, *, client_id: str = "", user=None, session=None):
    audit_record(event=EventType.OIDC_AUTHORIZATION_REFUSED, request=request, actor=user, session=session,
                 success=False, reason=error.error, client_id=printable(client_id),
                 redirected=bool(error.redirect_uri))
    if not error.redirect_uri:
        # Unknown client, redirect URI not registered, malformed request: never a redirect (RFC 6749 4.1.2.1).
        return _error_page(request, "This sign-in link does not work",
                           error.description or "The application sent a request this service cannot accept.")
    status, _, headers = error()
    response = HttpResponse(status=status)
    for key, value in headers:
        response[key] = value
    return response


def _fail(request, grant, error_cls, description: str, *, user=None, session=None):
    error = error_cls(description=description, redirect_uri=grant.redirect_uri, state=grant.request.payload.state)
    return _authorization_refused(request, error, client_id=grant.client.client_id, user=user, session=session)


# Fields of our own forms posted back to the authorization endpoint (consent); never part of the request.
FORM_FIELDS = frozenset({"csrfmiddlewaretoken", "form_account", "decision", "account"})


def _csrf_refused(request):
    """CSRF for the consent form: the endpoint itself is csrf_exempt, because OpenID Connect clients may POST
    the authorization request (Core 3.1.2.1) and no client has our token."""
    from django.middleware.csrf import CsrfViewMiddleware

    return CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def authorize(request):
    from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError
    from authlib.oidc.core.errors import (
        ConsentRequiredError, LoginRequiredError, RegistrationNotSupportedError, RequestNotSupportedError,
        RequestURINotSupportedError,
    )

    limited = _limited(request, "oidc_authorize")
    if limited is not None:
        response = _error_page(request, "Too many attempts", limited.message, status=429)
        response["Retry-After"] = limited.headers.get("Retry-After", "60")
        return response
    if request.method == "POST" and "decision" in request.POST:
        refused = _csrf_refused(request)
        if refused is not None:
            return refused
    browser = request.browser
    row = browser.row
    oauth_request = server.create_oauth2_request(request)
    try:
        grant = server.get_consent_grant(oauth_request, end_user=row.user if row is not None else None)
    except OAuth2Error as error:
        return _authorization_refused(request, error, client_id=oauth_request.payload.client_id)
    except ValueError:  # Authlib refuses to describe a value with characters RFC 6749 forbids in a description
        return _error_page(request, "This sign-in link does not work", "The request carries an invalid value.")
    client: OidcClient = grant.client
    data = oauth_request.payload.data
    for name, error_cls in (("request", RequestNotSupportedError), ("request_uri", RequestURINotSupportedError),
                            ("registration", RegistrationNotSupportedError)):
        if data.get(name):  # discovery says these are not supported (Core 6.1, 6.2, 7.2.1)
            return _fail(request, grant, error_cls, f"The {name} parameter is not supported.")
    prompts = set((data.get("prompt") or "").split())
    max_age = None
    if data.get("max_age") not in (None, ""):
        max_age = ascii_int(str(data["max_age"]), maximum=10**9)
        if max_age is None:
            return _fail(request, grant, InvalidRequestError, "max_age must be a number of seconds.")
    hint_sub = None
    if data.get("id_token_hint"):
        claims = id_token_hint_claims(data["id_token_hint"])
        if claims is None:
            return _fail(request, grant, InvalidRequestError, "The id_token_hint is not an id_token of this provider.")
        hint_sub = claims["sub"]
    login_hint = (data.get("login_hint") or "").strip().lower()

    scopes = grant.request.scope.split()
    answered_for = request.POST.get("account", "") if "decision" in request.POST else None
    step = authorization.authorization_step(
        client=client, scopes=scopes, active=row, others=[other for _, other in browser.other_rows()],
        prompts=prompts, max_age=max_age, hint_sub=hint_sub, login_hint=login_hint, answered_for=answered_for)
    chosen = step.session
    user = chosen.user if chosen is not None else None
    if step.kind == authorization.LOGIN_REQUIRED:
        return _fail(request, grant, LoginRequiredError, "A sign-in is needed (or of another account).", user=user,
                     session=chosen)
    if step.kind in (authorization.SIGN_IN, authorization.ADD_ACCOUNT):
        extra = {"add": "1"} if row is not None else {}
        return _to("/login", _without(request, "login", "select_account", fresh=True), **extra)
    if step.kind == authorization.REAUTHENTICATE:
        return _to("/account/reauthenticate", _without(request, "login", "select_account", fresh=True))
    if step.kind == authorization.CHOOSE_ACCOUNT:
        page = _page(request, "select_account", client=client, accounts=[row, *(o for _, o in browser.other_rows())],
                     active=row, continue_url=_without(request, "select_account"),
                     add_url="/login?" + urlencode({"add": "1", "next": _without(request, "select_account", "login")}))
        return allow_form_action(page, redirect_origin(grant.redirect_uri))
    if step.kind == authorization.CONSENT_REQUIRED:
        return _fail(request, grant, ConsentRequiredError, "The user has not allowed this application.", user=user,
                     session=chosen)
    if step.kind == authorization.CONSENT:
        page = _page(request, "consent", client=client, account=chosen, switched=chosen is not row,
                     scopes=[(s, authorization.SCOPE_WORDS.get(s, s)) for s in scopes], action=_without(request))
        return allow_form_action(page, redirect_origin(grant.redirect_uri))
    if step.kind == authorization.DECIDED:
        if request.POST.get("decision") != "allow":
            authorization.consent_deny(client=client, user=user, scopes=scopes, request=request)
            return _fail(request, grant, AccessDeniedError, "The user did not allow the application.", user=user,
                         session=chosen)
        authorization.consent_grant(client=client, user=user, scopes=scopes, request=request)

    grant.request.user = chosen.user
    grant.request.sso_session = chosen
    try:
        status, _, headers = grant.create_authorization_response(grant.redirect_uri, chosen.user)
    except OAuth2Error as error:
        error.state = oauth_request.payload.state
        return _authorization_refused(request, error, client_id=client.client_id, user=chosen.user, session=chosen)
    response = HttpResponse(status=status)
    for key, value in headers:
        response[key] = value
    add_never_cache_headers(response)
    return response


# --- token and revocation endpoints ---------------------------------------------------------------------------
def _oauth_json(status: int, error: str, description: str, headers: dict | None = None) -> HttpResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def _token_like(request, scope: str, call):
    limited = _limited(request, scope)
    if limited is not None:  # RFC 6749 has no error for this: the contract's envelope, with Retry-After
        response = JsonResponse({"error": {"code": limited.code, "message": limited.message}}, status=429)
        response["Retry-After"] = limited.headers.get("Retry-After", "60")
        response["Cache-Control"] = "no-store"
        return response
    try:
        return call()
    except (ValueError, UnicodeError):  # a Basic header that is not base64 of UTF-8, a forbidden character
        return _oauth_json(400, "invalid_request", "The request could not be read.")


@csrf_exempt
@require_POST
def token(request):
    return _token_like(request, "oidc_token", lambda: server.create_token_response(request))


@csrf_exempt
@require_POST
def revoke(request):
    return _token_like(request, "oidc_token", lambda: server.create_endpoint_response("revocation", request))


# --- userinfo -------------------------------------------------------------------------------------------------
def _bearer_refused(request, code: str, message: str, status: int = 401, error: str = "invalid_token",
                    reason: str = "", session=None):
    audit_record(event=EventType.OIDC_TOKEN_REFUSED, request=request, success=False, reason=reason or code,
                 endpoint="userinfo", session=session, subject=getattr(session, "user", None))
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    response["WWW-Authenticate"] = f'Bearer error="{error}"'
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@require_http_methods(["GET", "POST"])
def userinfo(request):
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, raw = header.partition(" ")
    if not header and request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        scheme, raw = "bearer", request.POST.get("access_token", "")  # RFC 6750 2.2, the form body
    if scheme.lower() != "bearer" or not raw.strip():
        response = _bearer_refused(request, "not_authenticated", "An access token is required (Authorization: Bearer).")
        response["WWW-Authenticate"] = "Bearer"
        return response
    try:
        claims = access_token_verify(raw.strip())
    except TokenError as exc:
        return _bearer_refused(request, "invalid_token", "The access token is invalid or expired.", reason=exc.reason)
    scopes = claims.get("scope", "").split() if isinstance(claims.get("scope"), str) else []
    if not isinstance(claims.get("client_id"), str) or "openid" not in scopes:
        return _bearer_refused(request, "insufficient_scope", "This token was not issued with the openid scope.", 403,
                               "insufficient_scope")
    if not OidcClient.objects.usable().filter(client_id=claims["client_id"]).exists():
        return _bearer_refused(request, "invalid_token", "The access token is invalid or expired.",
                               reason="client_inactive")
    session = session_for_claims(claims)
    refusal = session_refusal(session, timezone.now()) if session is not None else None
    if session is None or refusal is not None:
        return _bearer_refused(request, "invalid_token", "The access token is invalid or expired.",
                               reason=refusal.reason if refusal is not None else "no_session", session=session)
    response = JsonResponse(user_claims(session.user, scopes))
    response["Cache-Control"] = "no-store"
    return response


# --- RP-initiated logout 1.0 ----------------------------------------------------------------------------------
def _logout_target(request, claims):
    """The browser account the id_token_hint names: (raw key or None for the active one, row), or None."""
    browser = request.browser
    rows = ([(None, browser.row)] if browser.row is not None else []) + list(browser.other_rows())
    if claims is None:
        return rows[0] if rows else None
    for key, row in rows:
        if claims.get("sid") == str(row.pk):
            return key, row
    for key, row in rows:
        if claims.get("sub") == str(row.user_id):
            return key, row
    return None


def _browser_sign_out(request, key, row) -> None:
    """Sign one account of this browser out (the active one: the next account signed in here takes over)."""
    browser = request.browser
    session_logout(session=row, request=request)
    if key is not None:
        browser.forget_other(key)
        return
    browser.signed_out()
    others = browser.other_rows()
    if others:
        browser.switched_to(others[0][1], others[0][0])


@csrf_exempt
@require_http_methods(["GET", "POST"])
def end_session(request):
    params = request.POST if request.method == "POST" else request.GET
    hint = params.get("id_token_hint") or ""
    claims = id_token_hint_claims(hint) if hint else None
    if hint and claims is None:
        return _error_page(request, "Sign-out link does not work", "The id_token_hint is not one of this service.")
    client_id = params.get("client_id") or ""
    if claims is not None:
        aud = claims["aud"] if isinstance(claims["aud"], str) else (claims["aud"] or [""])[0]
        if client_id and client_id != aud:
            return _error_page(request, "Sign-out link does not work", "client_id does not match the id_token_hint.")
        client_id = aud
    client = server.query_client(client_id) if client_id else None
    target_uri = params.get("post_logout_redirect_uri") or ""
    if target_uri and (client is None or target_uri not in client.post_logout_redirect_uris):
        return _error_page(request, "Sign-out link does not work",
                           "The post_logout_redirect_uri is not registered for this application.")
    target = _logout_target(request, claims)
    confirmed = claims is not None or (request.method == "POST" and params.get("confirm") == "yes")
    if target is not None and not confirmed:
        # Without an id_token_hint anyone could link here: the user confirms (CSRF-protected form).
        page = _page(request, "logout", account=target[1], client=client, params=[
            (k, v) for k, v in (("client_id", client_id), ("post_logout_redirect_uri", target_uri),
                                ("state", params.get("state") or "")) if v])
        return allow_form_action(page, redirect_origin(target_uri) if target_uri else None)
    if target is not None and request.method == "POST" and claims is None:
        from django.middleware.csrf import CsrfViewMiddleware

        if CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {}) is not None:
            return _error_page(request, "Sign-out refused", "The form expired; open the sign-out link again.", 403)
    if target is not None:
        key, row = target
        _browser_sign_out(request, key, row)
        audit_record(event=EventType.OIDC_LOGOUT, request=request, actor=row.user, session=row,
                     client_id=client.client_id if client else "")
    if target_uri:
        state = params.get("state")
        return redirect(add_params_to_uri(target_uri, [("state", state)]) if state else target_uri)
    return _page(request, "logged_out", client=client)


# --- /account/apps --------------------------------------------------------------------------------------------
@require_GET
def account_apps(request):
    row = request.browser.row
    if row is None:
        return redirect("/login?" + urlencode({"next": request.get_full_path()}))
    apps = authorization.apps_for(row.user)
    return _page(request, "apps", apps=[(app, [(s, authorization.SCOPE_WORDS.get(s, s)) for s in app.scopes])
                                        for app in apps])


@require_POST
def account_app_revoke(request, client_id: str):
    row = request.browser.row
    if row is None:
        return redirect("/login?" + urlencode({"next": "/account/apps"}))
    client = OidcClient.objects.filter(client_id=client_id[:64]).first() if "\x00" not in client_id else None
    if client is None:
        return _error_page(request, "Not found", "No such application.", status=404)
    authorization.app_access_withdraw(client=client, user=row.user, request=request)
    return redirect("/account/apps")
