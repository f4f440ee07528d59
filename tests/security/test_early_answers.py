"""Issue 14, item 4: an answer given before the body is read (401, 403, 413, 415, 429) reaches a client
that talks to the server directly, instead of a reset (core/middleware.py,
EarlyAnswerBodyDrainMiddleware).

The client here is an ordinary one on a slow link: it sends the headers, then its body in pieces,
and reads the answer when it is done sending. Without the drain the server answers at once, closes
with the body still arriving, and the kernel's reset turns the client's next send into a broken pipe
(checked: without the middleware every case below but the page one fails, under granian and gunicorn). The server is a real granian
(``python -m config.serve``, the production server) and a real gunicorn (sync, and gthread with keep-alive) on
a free loopback port, with its own SQLite database."""

from __future__ import annotations

import http.client
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory

from core.middleware import EarlyAnswerBodyDrainMiddleware
from tests.e2e.conftest import start_process, start_server

REPO = Path(__file__).resolve().parents[2]
LIMIT = 1024 * 1024
PIECE = 64 * 1024
SCRUB = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "MANA_DATA_DIR", "EMAIL_URL",
         "PYTEST_CURRENT_TEST", "DJANGO_ALLOW_ASYNC_UNSAFE")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def child_env(tmp_path_factory):
    data = tmp_path_factory.mktemp("early-answers")
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(MANA_DATA_DIR=str(data), DEBUG="true", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True, timeout=180,
                   stdin=subprocess.DEVNULL)
    return env, data


@pytest.fixture(scope="module", params=["granian", "sync", "gthread"])
def server(request, child_env):
    env, data = child_env
    port = _free_port()
    name = f"server-{request.param}"
    if request.param == "granian":  # the production server (config/serve.py)
        running = start_server(name, "config.wsgi", cwd=REPO, env=env, logdir=data, ready_path="/healthz",
                               port=port, threads=2)
    else:  # gunicorn (config/gunicorn.py), still supported
        command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                   "--worker-class", request.param, "--graceful-timeout", "2", "--error-logfile", "-"]
        if request.param == "gthread":
            command += ["--threads", "2", "--keep-alive", "5"]
        running = start_process(name, command, url=f"http://127.0.0.1:{port}", cwd=REPO, env=env, logdir=data,
                                ready_path="/healthz")
    try:
        # First requests make the worker import most of the application: the answers measured come from a
        # warm worker, as in production (a cold one answers slower than the body arrives, which would hide
        # the reset).
        for method, path, status in (("GET", "/api/v1/auth/jwks", 200), ("POST", "/api/v1/auth/logout", 401),
                                     ("GET", "/login", 200)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, path, body=b"" if method == "POST" else None)
            assert conn.getresponse().status == status, running.describe()
            conn.close()
        yield port
    finally:
        running.stop()


def slow_post(port, path, size, *, content_type="application/json", pause=0.03):
    """POST ``size`` bytes in 64 KiB pieces, then read the answer: (status, Connection header), or
    the OSError the client got instead."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", content_type)
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        sent = 0
        while sent < size:
            piece = min(PIECE, size - sent)
            conn.send(b" " * piece)
            sent += piece
            time.sleep(pause)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Connection")
    except OSError as exc:
        return exc
    finally:
        conn.close()


BIG = 900 * 1024


@pytest.mark.parametrize("path, size, content_type, status", [
    ("/api/v1/auth/logout", BIG, "application/json", 401),  # no credentials: refused before parsing
    ("/api/v1/auth/refresh", BIG, "text/plain", 415),  # not JSON: refused before reading
    # A page POST without a CSRF cookie (the CSRF failure page reads the form, so this one passes without
    # the drain too; it shows the pages are covered).
    ("/account/security", BIG, "application/x-www-form-urlencoded", 403),
    ("/api/v1/auth/register", LIMIT + 16 * 1024, "application/json", 413),  # over the limit, by a little
])
def test_an_early_answer_reaches_a_client_still_sending(server, path, size, content_type, status):
    result = slow_post(server, path, size, content_type=content_type)
    assert not isinstance(result, OSError), f"the client got {result!r} instead of {status}"
    assert result[0] == status


def test_a_rate_limited_large_post_reaches_the_client(server):
    # Spend the login budget (5/m per address) with small requests, then send a large one.
    for _ in range(10):
        small = slow_post(server, "/api/v1/auth/login", 2, pause=0)
        if not isinstance(small, OSError) and small[0] == 429:
            break
    else:
        pytest.fail("the login rate limit never answered 429")
    result = slow_post(server, "/api/v1/auth/login", BIG)
    assert not isinstance(result, OSError), f"the client got {result!r} instead of 429"
    assert result[0] == 429


# --- the middleware in-process: bounded, and Connection: close past the limit -------------------------------
class CountingStream(io.BytesIO):
    def __init__(self, size):
        super().__init__(b"x" * size)
        self.taken = 0

    def read(self, n=-1):
        chunk = super().read(n)
        self.taken += len(chunk)
        return chunk


def _answer_early(status=401):
    return EarlyAnswerBodyDrainMiddleware(lambda request: HttpResponse(status=status))


def _request(size, *, declared=None, **meta):
    stream = CountingStream(size)
    request = RequestFactory().generic("POST", "/api/v1/auth/logout", b"", content_type="application/json",
                                       **{"wsgi.input": stream, "CONTENT_LENGTH": str(size if declared is None
                                                                                      else declared), **meta})
    return request, stream


def test_a_body_within_the_limit_is_read_to_its_end():
    request, stream = _request(BIG)
    response = _answer_early()(request)
    assert stream.taken == BIG and "Connection" not in response


def test_a_body_over_the_limit_is_read_up_to_the_limit_and_the_connection_closed():
    assert settings.REQUEST_BODY_MAX_BYTES == LIMIT
    request, stream = _request(3 * LIMIT)
    response = _answer_early(413)(request)
    assert stream.taken == LIMIT and response["Connection"] == "close"


def test_django_development_server_gets_no_hop_by_hop_header():
    """wsgiref refuses hop-by-hop headers from an application (and reads the rest itself)."""
    request, stream = _request(3 * LIMIT, SERVER_SOFTWARE="WSGIServer/0.2 CPython/3.11")
    response = _answer_early(413)(request)
    assert stream.taken == LIMIT and "Connection" not in response


def test_a_chunked_body_is_drained_where_the_server_ends_the_stream():
    request, stream = _request(BIG, declared="", HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input_terminated": True})
    assert "Connection" not in _answer_early()(request) and stream.taken == BIG
    request, stream = _request(3 * LIMIT, declared="", HTTP_TRANSFER_ENCODING="chunked",
                               **{"wsgi.input_terminated": True})
    assert _answer_early()(request)["Connection"] == "close" and stream.taken == LIMIT + 1
    # Without wsgi.input_terminated a read past the body could block: left alone.
    request, stream = _request(BIG, declared="", HTTP_TRANSFER_ENCODING="chunked")
    assert "Connection" not in _answer_early()(request) and stream.taken == 0


def test_a_body_the_view_read_costs_nothing_more(db):
    from django.test import Client

    response = Client().post("/api/v1/auth/login", {"email": "a@example.com", "password": "x" * 20},
                             content_type="application/json")
    assert response.status_code == 401 and "Connection" not in response
