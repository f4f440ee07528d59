"""The JWKS without the framework: every resource server polls it, and it changes at most on rotation.

``JwksFastPathMiddleware`` answers ``GET /.well-known/jwks.json`` and ``GET /api/v1/auth/jwks`` from
``identity.services.keys.jwks_json()`` (rebuilt at most every 5 s per process, and within a second of a
rotation or revocation anywhere): one database query per process every few seconds instead of one per
request, and no DRF, throttle or session work. The
document is public and sent with ``Cache-Control: public``, so the per-client API rate limit does not
apply to it. Anything else (another method, a disallowed Host) goes on to the normal view.
"""

from django.core.exceptions import DisallowedHost
from django.http import HttpResponse

from core.fast_path import add_csp
from identity.app_settings import app_settings
from identity.services.keys import jwks_json

JWKS_PATHS = frozenset({"/.well-known/jwks.json", "/api/v1/auth/jwks"})


def _accepts_json(accept: str) -> bool:
    """No Accept header, or one that admits JSON; anything else gets the view's 406."""
    return not accept or any(kind in accept for kind in ("application/json", "*/*", "application/*"))


class JwksFastPathMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info in JWKS_PATHS and request.method in ("GET", "HEAD") \
                and _accepts_json(request.META.get("HTTP_ACCEPT", "")):
            try:
                request.get_host()
            except DisallowedHost:
                return self.get_response(request)
            response = HttpResponse(jwks_json(), content_type="application/json")
            response["Cache-Control"] = f"public, max-age={app_settings.JWKS_MAX_AGE}"
            response["Allow"] = "GET, HEAD, OPTIONS"
            response["X-Frame-Options"] = "DENY"
            return add_csp(response)
        return self.get_response(request)
