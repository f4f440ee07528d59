"""A database outage answers 503 service_unavailable with Retry-After (API envelope, "we'll be right back"
page), logged as one warning line without a stack trace; the browser stays signed in (issue 17).
The same under a real server, with the database cut and hung: tests/faults."""

from __future__ import annotations

import logging
import time

import pytest
from django.db import OperationalError, connection
from django.db.utils import InterfaceError
from django.test import Client, RequestFactory

from core.outage import is_outage
from core.views import server_error
from identity.services import keys
from sessions_app.app_settings import app_settings as session_settings
from tests.support.auth import page_login
from tests.support.errors import error_code


def refuse(execute, sql, params, many, context):
    raise OperationalError('connection to server at "db.internal" (10.0.0.5), port 5432 failed: Connection refused')


def no_trace(caplog) -> bool:
    return not any(record.exc_info for record in caplog.records)


def test_is_outage():
    assert is_outage(OperationalError("down")) and is_outage(InterfaceError("closed"))
    import psycopg

    assert is_outage(psycopg.OperationalError("timeout"))
    try:
        try:
            raise OperationalError("down")
        except OperationalError as exc:
            raise RuntimeError("while saving") from exc
    except RuntimeError as wrapped:
        assert is_outage(wrapped)
    assert not is_outage(ValueError("a bug")) and not is_outage(None)
    assert not is_outage(ConnectionError("not the database"))  # Redis, SMTP: their own fallbacks


def test_api_answers_503_in_the_envelope(api, user, caplog):
    caplog.set_level(logging.WARNING)
    with connection.execute_wrapper(refuse):
        response = api.post("/api/v1/auth/login", {"email": user.email, "password": "whatever-it-is-1"},
                            format="json")
    assert error_code(response, 503) == "service_unavailable"
    assert response["Retry-After"].isdigit() and "no-store" in response["Cache-Control"]
    warnings = [r for r in caplog.records if r.name == "core.outage"]
    assert len(warnings) == 1 and "Connection refused" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.name == "django.request"]  # no second ERROR line
    assert no_trace(caplog)
    assert "db.internal" not in response.content.decode()  # the cause is for the log only


def test_page_answers_we_will_be_right_back_and_keeps_the_browser_signed_in(user, caplog):
    caplog.set_level(logging.WARNING)
    client = Client()
    assert page_login(client, user.email).status_code == 302
    client.cookies.pop(session_settings.CACHE_COOKIE, None)
    with connection.execute_wrapper(refuse):
        response = client.get("/account/sessions")
    assert response.status_code == 503 and response["Retry-After"].isdigit()
    assert b"be right back" in response.content
    assert session_settings.SESSION_COOKIE not in response.cookies  # not deleted: still signed in after
    assert no_trace(caplog)
    assert client.get("/account/sessions").status_code == 200


def test_an_outage_raised_in_a_middleware_reaches_the_500_handler_as_503():
    request = RequestFactory().get("/api/v1/auth/me")
    try:
        raise OperationalError("server closed the connection unexpectedly")
    except OperationalError:
        response = server_error(request)
    assert response.status_code == 503 and b"service_unavailable" in response.content
    try:
        raise ValueError("a bug")
    except ValueError:
        assert server_error(request).status_code == 500


def test_jwks_and_signer_are_served_from_memory_while_the_database_is_down(api):
    body = api.get("/.well-known/jwks.json").content
    signer = keys.signing_key_current()
    keys._jwks_json = (time.monotonic() - 1, keys._jwks_json[1])  # expired: the next request rebuilds
    keys._signer = (time.monotonic() - 1, keys._signer[1])
    keys._checked_at = None
    with connection.execute_wrapper(refuse):
        assert api.get("/.well-known/jwks.json").content == body
        assert api.get("/api/v1/auth/jwks").content == body
        assert keys.signing_key_current() == signer
    # and after the outage, rebuilt from the database
    keys._jwks_json = None
    assert api.get("/.well-known/jwks.json").content == body


@pytest.mark.redis
def test_a_process_started_during_the_outage_serves_the_jwks_left_in_redis(api):
    body = api.get("/.well-known/jwks.json").content
    keys._cache_clear()  # a new process: nothing in memory
    with connection.execute_wrapper(refuse):
        response = api.get("/.well-known/jwks.json")
    assert response.status_code == 200 and response.content == body


def test_without_any_copy_the_jwks_answers_503():
    keys._cache_clear()
    # Raised in a middleware (the JWKS fast path): the 500 handler answers 503. (The test client would
    # re-raise what the handler saw; a server does not.)
    client = Client(raise_request_exception=False)
    with connection.execute_wrapper(refuse), pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys, "_jwks_copy_read", lambda: None)
        response = client.get("/.well-known/jwks.json")
    assert error_code(response, 503) == "service_unavailable"
