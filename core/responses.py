import time

from django.http import HttpResponse
from django.utils.http import http_date
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

# What django.utils.cache.add_never_cache_headers and patch_cache_control(no_store=True, private=True) write,
# as one constant: those two parse and rebuild the header on every call (about 90 us, on every refresh and
# login); tests/core/test_responses.py holds the two equal.
NEVER_STORE = "max-age=0, no-cache, no-store, must-revalidate, private"


def secret_response(data, status=200) -> Response:
    """A response that carries a token or secret: never stored by any cache."""
    return _never_stored(Response(data, status=status))


_JSON = JSONRenderer()


def secret_json_response(data, status=200) -> HttpResponse:
    """``secret_response`` already rendered (DRF's JSON, the same headers), for an answer given before DRF
    (sessions_app.middleware): no Response to build and render."""
    return _never_stored(HttpResponse(_JSON.render(data), content_type="application/json", status=status))


_now_date: tuple[int, str] = (0, "")


def http_date_now() -> str:
    """``http_date()`` of now (whole seconds, as it writes them), formatted once per second: every
    never-stored answer and the GET session fast path write it (formatdate was 1% of a refresh's CPU)."""
    global _now_date
    second = int(time.time())
    cached = _now_date
    if cached[0] != second:
        cached = _now_date = (second, http_date(second))
    return cached[1]


def _never_stored(response):
    response["Expires"] = http_date_now()
    response["Cache-Control"] = NEVER_STORE
    return response
