"""The production web server's own defences (config/serve.py: granian), on a real server process.

- A request head that does not arrive within ``WEB_HEADER_TIMEOUT_SECONDS`` is dropped, and while it is
  pending the worker's threads keep serving others (gunicorn's gthread threads waited on such heads with no
  deadline: docs/security.md, "Slow request heads").
- Oversized heads are refused before Python sees them: a request line of 64 KiB (414), 500 header fields
  (431), a header of 200 KB (431).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import start_server

REPO = Path(__file__).resolve().parents[2]
SCRUB = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "MANA_DATA_DIR", "EMAIL_URL",
         "PYTEST_CURRENT_TEST", "DJANGO_ALLOW_ASYNC_UNSAFE", "PROMETHEUS_MULTIPROC_DIR")
HEADER_TIMEOUT = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str = "/healthz", timeout: float = 10) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` and return the first line of whatever the server answers (b"" if it just closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            return sock.recv(4096).split(b"\r\n", 1)[0]
        except ConnectionResetError:
            return b""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("web-server")
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(MANA_DATA_DIR=str(data), DEBUG="true", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
               WEB_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True, timeout=180,
                   stdin=subprocess.DEVNULL)
    port = _free_port()
    # One worker with one thread: a head that held the thread would hold the whole server.
    running = start_server("web-server", "config.wsgi", cwd=REPO, env=env, logdir=data, ready_path="/healthz",
                           port=port, threads=1)
    try:
        yield port, data
    finally:
        running.stop()


def test_a_slow_request_head_is_dropped_and_holds_no_thread(server):
    port, _ = server
    slow = [socket.create_connection(("127.0.0.1", port), timeout=HEADER_TIMEOUT * 5) for _ in range(3)]
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        # Three heads pending on a one-thread worker; complete requests are answered at once.
        started = time.monotonic()
        assert [_get(port, timeout=3) for _ in range(3)] == [200, 200, 200]
        assert time.monotonic() - started < 2
        # The half-sent heads are dropped once the deadline has passed, with no answer or with a 408.
        started = time.monotonic()
        for sock in slow:
            answer = sock.recv(4096)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert HEADER_TIMEOUT - 0.5 < time.monotonic() - started < HEADER_TIMEOUT * 3
    finally:
        for sock in slow:
            sock.close()


@pytest.mark.parametrize(("head", "status"), [
    (b"GET /healthz?" + b"a" * 65536 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"414"),
    (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(500)) + b"\r\n",
     b"431"),
    (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n", b"431"),
], ids=["request-line-64KiB", "500-fields", "header-200KB"])
def test_oversized_heads_are_refused_before_the_application(server, head, status):
    port, _ = server
    assert _raw(port, head).split(b" ")[1:2] == [status]
    assert _get(port) == 200  # and the server goes on


def test_an_ordinary_head_with_long_cookies_is_served(server):
    """A browser signed in to several accounts sends long cookies: 16 KB of them is an ordinary request."""
    port, _ = server
    head = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: "
            + b"; ".join(b"c%d=%s" % (i, b"v" * 1000) for i in range(16)) + b"\r\n\r\n")
    assert _raw(port, head) == b"HTTP/1.1 200 OK"


def test_a_requests_environ_holds_no_environment_variable(tmp_path):
    """granian copies the worker's environment into every environ; config.serve drops it again, so
    ``request.META`` never carries ``SECRET_KEY`` and the like (checked through a real server)."""
    import json

    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(PYTHONDONTWRITEBYTECODE="1", MANA_DATA_DIR=str(tmp_path), MANA_TEST_SECRET="not-for-requests")
    port = _free_port()
    running = start_server("environ", "tests.support.environ_app", cwd=REPO, env=env, logdir=tmp_path,
                           ready_path="/ready", port=port, threads=1)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/probe", headers={"X-Probe": "1"})
        keys = json.loads(conn.getresponse().read())
        conn.close()
        assert "HTTP_X_PROBE" in keys and "PATH_INFO" in keys and "REMOTE_ADDR" in keys
        assert "MANA_TEST_SECRET" not in keys and "PATH" not in keys and "HOME" not in keys
    finally:
        running.stop()


def test_a_request_in_flight_finishes_when_the_server_is_stopped(tmp_path):
    """A rolling deploy sends SIGTERM to the server's main process: the request being served still gets
    its whole answer, and the server is gone within ``WEB_GRACEFUL_SECONDS``."""
    import threading

    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(PYTHONDONTWRITEBYTECODE="1", MANA_DATA_DIR=str(tmp_path), WEB_GRACEFUL_SECONDS="5")
    port = _free_port()
    running = start_server("slow", "tests.support.slow_app", cwd=REPO, env=env, logdir=tmp_path,
                           ready_path="/?seconds=0", port=port, threads=2)
    process = running.process
    try:
        answers = []

        def slow():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            conn.request("GET", "/?seconds=2")
            response = conn.getresponse()
            answers.append((response.status, response.read()))
            conn.close()

        client = threading.Thread(target=slow)
        client.start()
        time.sleep(0.5)  # the request is being served
        process.send_signal(signal.SIGTERM)
        client.join(15)
        assert answers == [(200, b"finished")], running.describe()
        assert process.wait(10) == 0  # gone, cleanly, well within the graceful window
    finally:
        running.stop()
