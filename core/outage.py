"""An expected outage of the database answers 503, never 500 (issue 17, docs/deploy.md).

``is_outage(exc)`` says whether an exception means "the database is unreachable, refused us or timed
out" (Django's and psycopg's ``OperationalError`` and ``InterfaceError``, connection timeouts included)
rather than a bug. ``outage_response(request, exc)`` logs one warning line with the cause (no stack
trace: the cause is known, the operator needs the fact, not the frames) and answers 503 with
``Retry-After``: the contract's error envelope for the API, a short "we'll be right back" page for
pages. The DRF exception handler (core/errors.py), ``OutageMiddleware`` (core/middleware.py: page views)
and the 500 handler (core/views.py: exceptions raised in a middleware) all go through it.
"""

from __future__ import annotations

import logging

from django.db import utils as db_utils
from django.http import HttpResponse, JsonResponse
from django.template import loader

logger = logging.getLogger("core.outage")

RETRY_AFTER_SECONDS = 5
CODE = "service_unavailable"
MESSAGE = "The service is briefly unavailable. Try again in a few seconds."


def _outage_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [db_utils.OperationalError, db_utils.InterfaceError]
    try:
        import psycopg

        types += [psycopg.OperationalError, psycopg.InterfaceError]
    except ImportError:  # pragma: no cover - SQLite-only installs
        pass
    return tuple(types)


_TYPES = _outage_types()


def is_outage(exc: BaseException | None) -> bool:
    """True for "the database is not there" (refused, reset, timed out, closed), also when another
    exception was raised while handling it. psycopg's connection timeout (``ConnectionTimeout``) and the
    client-side deadline (core/database) are ``OperationalError`` too. A query error (syntax, constraint:
    ``ProgrammingError``, ``IntegrityError``) is a bug or a race, not an outage."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, _TYPES):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def cause(exc: BaseException) -> str:
    """The first line of the driver's message: what failed, without frames, queries or parameters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def outage_log(request, exc: BaseException) -> None:
    logger.warning("database unavailable, answered 503: %s %s: %s", request.method, request.path, cause(exc))


def is_api(request) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/.well-known/")


def outage_response(request, exc: BaseException) -> HttpResponse:
    """503 with Retry-After, logged once (Django's own request log is told it is done)."""
    outage_log(request, exc)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
    if is_api(request):
        # The envelope of core/errors.py (which imports this module, so it is written out here).
        response = JsonResponse({"error": {"code": CODE, "message": MESSAGE}}, status=503)
    else:
        response = HttpResponse(loader.render_to_string("503.html"), status=503)
    for name, value in headers.items():
        response[name] = value
    response._has_been_logged = True  # django.request would add an ERROR line for the 503
    return response
