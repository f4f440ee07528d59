"""The pages on the way to a client let a form's redirect chain end at that client.

The site's policy says ``form-action 'self'``, and Chromium applies it to every redirect that follows a form
submission. Signing in for a client is such a chain: POST /login (or /account/reauthenticate, the consent
form, the account switch) -> 302 /oidc/authorize -> 302 to the client's redirect URI. So a page whose form
continues to an authorization request of a registered client (``next=/oidc/authorize?...``, or the consent and
account-choice pages themselves) also allows the origin of that client's redirect URI, and nothing else.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from oidc_provider.models import OidcClient

AUTHORIZE_PATH = "/oidc/authorize"


def redirect_origin(redirect_uri: str) -> str | None:
    """The CSP source of a redirect URI: ``https://host:port``, or the scheme of a native app's URI."""
    parts = urlsplit(redirect_uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else None
    return f"{parts.scheme}:" if parts.scheme else None


def client_origin(client_id, redirect_uri) -> str | None:
    """The origin of ``redirect_uri`` if it is registered for the usable client ``client_id``."""
    if not isinstance(client_id, str) or not isinstance(redirect_uri, str) or len(client_id) > 64 \
            or "\x00" in client_id:
        return None
    client = OidcClient.objects.usable().filter(client_id=client_id).first()
    if client is None or not client.check_redirect_uri(redirect_uri):
        return None
    return redirect_origin(redirect_uri)


def allow_form_action(response, origin: str | None):
    if origin:
        update = dict(getattr(response, "_csp_update", None) or {})
        update["form-action"] = [*update.get("form-action", []), origin]
        response._csp_update = update
    return response


def next_origin(request) -> str | None:
    """The client origin a page's ``next=`` authorization request ends at, or None."""
    try:
        target = request.GET.get("next") or (request.POST.get("next") if request.method == "POST" else None)
    except Exception:  # noqa: BLE001 - an unreadable body: the view answers for it
        return None
    if not isinstance(target, str) or not target.startswith(AUTHORIZE_PATH + "?"):
        return None
    query = parse_qs(urlsplit(target).query)
    return client_origin((query.get("client_id") or [None])[0], (query.get("redirect_uri") or [None])[0])


class AuthorizationFormActionMiddleware:
    """After ``csp.middleware.CSPMiddleware`` in MIDDLEWARE (so it runs first on the response): an HTML page
    whose ``next`` is an authorization request of a registered client allows that client's origin as a
    form target (see the module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html"):
            allow_form_action(response, next_origin(request))
        return response
