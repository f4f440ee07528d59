import logging

from corsheaders.middleware import CorsMiddleware as LibraryCorsMiddleware
from django.conf import settings
from django.http import JsonResponse
from django.utils.cache import patch_vary_headers

from core import health

from core.errors import json_error
from core.fields import ascii_int
from core.outage import is_outage, outage_response

logger = logging.getLogger(__name__)
DRAIN_CHUNK = 64 * 1024


class CorsMiddleware(LibraryCorsMiddleware):
    """django-cors-headers, which for a request without an ``Origin`` header (every mobile app and
    backend call) only adds ``Vary: origin``: that answer given without reading ``request.headers``,
    whose construction (every header's name parsed into a new dict) was 2.5% of a refresh's CPU
    (bench/ab_cpu.py). A request with an ``Origin`` goes the library's whole way."""

    def add_response_headers(self, request, response):
        if "HTTP_ORIGIN" in request.META:
            return super().add_response_headers(request, response)
        enabled = getattr(request, "_cors_enabled", None)
        if enabled is None:
            enabled = self.is_enabled(request)
        if enabled:
            patch_vary_headers(response, ("origin",))
        return response


class RequestBodyLimitMiddleware:
    """Refuse bodies over REQUEST_BODY_MAX_BYTES before anything reads them (413 in the envelope).

    DRF's parsers read the WSGI stream directly, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not
    protect JSON endpoints; the declared Content-Length does (the WSGI server never hands a view
    more than it).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw = (request.META.get("CONTENT_LENGTH") or "").strip(" \t") or "0"
        # HTTP allows ASCII digits only; int() would also take "-1", "+5", "1_0" and "１２" (and raise
        # on 5,000 digits): the one strict parser.
        length = ascii_int(raw, maximum=settings.REQUEST_BODY_MAX_BYTES)
        if length is None:
            return json_error("malformed_request", "Content-Length is not a number.", 400)
        if length > settings.REQUEST_BODY_MAX_BYTES:
            return json_error("request_too_large", "The request body is larger than 1 MiB.", 413)
        return self.get_response(request)


class ContentLengthMiddleware:
    """Every answer that is not streamed says how long it is, before anything else in MIDDLEWARE sees it.
    Django's CommonMiddleware sets Content-Length, but the fast paths (sessions_app.middleware,
    identity.middleware, the health checks, an early refusal) answer before it runs, so their answers
    differed from the view's by that header, and gunicorn sent their bodies in chunks over HTTP/1.1 (the
    headers, the chunk and the closing chunk as three writes). Throughput did not change measurably
    (docs/benchmarks.md); a client now knows the size of every answer."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.streaming and "Content-Length" not in response:
            response["Content-Length"] = str(len(response.content))
        return response


class EarlyAnswerBodyDrainMiddleware:
    """An answer given before the body was read (429, 413, 415, 401, a CSRF or method refusal...) must
    reach the client (issue 14). A WSGI server that closes a connection with unread request bytes in
    its receive buffer makes the kernel send a reset, and a client still sending its body, or one
    that sends first and reads after, sees ECONNRESET or a broken pipe instead of the status.

    So, first in MIDDLEWARE (around everything that can answer early), after the response is made
    and before it goes out: read and discard what is left of the body, in chunks, up to
    REQUEST_BODY_MAX_BYTES. A body larger than that is not read further (the point of the limit) and
    the response says ``Connection: close``. A body the view read is at its end already (or, once
    Django made ``request.body`` of it, re-read from memory: at most the same limit).

    Servers: gunicorn drops hop-by-hop headers an application sets and decides itself (its sync
    worker closes every connection; gthread closes one whose body it cannot drain within 64 KiB);
    Django's development server (wsgiref) refuses them and reads the rest of the body itself, so the
    header is left out there.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        limit = settings.REQUEST_BODY_MAX_BYTES
        raw = (request.META.get("CONTENT_LENGTH") or "").strip(" \t")
        declared = ascii_int(raw, maximum=limit) if raw else None
        if declared:
            # request.read() is Django's stream, bounded by the Content-Length (or, once request.body
            # was read, a copy in memory).
            read = _drain(request.read, min(declared, limit))
            complete = read is not None and declared <= limit
        elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() \
                and request.META.get("wsgi.input_terminated"):
            # Django reads no body without a Content-Length; the server's stream ends with the body.
            read = _drain(request.META["wsgi.input"].read, limit + 1)
            complete = read is not None and read <= limit
        else:
            return response
        if not complete and not request.META.get("SERVER_SOFTWARE", "").startswith("WSGIServer/"):
            response["Connection"] = "close"
        return response


def _drain(read, budget: int) -> int | None:
    """Read and discard up to ``budget`` bytes (fewer when the stream ends); how many, or None when
    reading failed (the client went away)."""
    done = 0
    try:
        while done < budget:
            chunk = read(min(DRAIN_CHUNK, budget - done))
            if not chunk:
                break
            done += len(chunk)
    except Exception:
        logger.debug("request body drain stopped after %s bytes", done, exc_info=True)
        return None
    return done


class OutageMiddleware:
    """A view that meets a database outage answers 503 (the page "we'll be right back", or the API's
    envelope) instead of a 500 with a stack trace (core/outage.py). DRF views get the same from the
    exception handler; an exception raised by a middleware reaches ``core.views.server_error``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_outage(exception):
            return outage_response(request, exception)
        return None


HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


class HealthCheckMiddleware:
    """``GET``/``HEAD /healthz`` and ``/readyz`` (core/health.py), answered first in MIDDLEWARE: before
    the HTTPS redirect and the Host check (a load balancer probes a backend by its address, over plain
    HTTP), and outside sessions, CSRF, CSP and the rate limits."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if path in HEALTH_PATHS and request.method in ("GET", "HEAD"):
            if path == "/healthz":
                status, body = 200, health.liveness()
            else:
                ready, body = health.readiness()
                status = 200 if ready else 503
            response = JsonResponse(body, status=status)
            response["Cache-Control"] = "no-store"
            if status == 503:
                response["Retry-After"] = "5"
                response._has_been_logged = True  # core.health logged the cause
            return response
        return self.get_response(request)
