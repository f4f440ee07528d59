"""A scrape sums every worker of the server (core/metrics.py in multiprocess mode).

Two real servers, each with two workers on a free loopback port with its own SQLite database: granian
(``python -m config.serve``, the production server: it sets PROMETHEUS_MULTIPROC_DIR before the workers
load the application, and a starting worker marks the workers that are gone as dead) and gunicorn with sync
workers (``-c config/gunicorn.py``, whose ``child_exit`` marks them). Requests are spread until both workers
have served some; then one scrape, whichever worker answers it, must count every one of them; and after a
worker is killed (the server starts another), its requests are still counted and its live gauges are gone."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import start_process, start_server

REPO = Path(__file__).resolve().parents[2]
TOKEN = "gunicorn-metrics-token-0123456789abcdef"
SCRUB = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "MANA_DATA_DIR", "EMAIL_URL",
         "PYTEST_CURRENT_TEST", "DJANGO_ALLOW_ASYNC_UNSAFE", "PROMETHEUS_MULTIPROC_DIR", "AUTH_METRICS_TOKEN")
JWKS = "/api/v1/auth/jwks"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _post_login(port: int, email: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/api/v1/auth/login", body=f'{{"email": "{email}", "password": "wrong-password-1"}}',
                     headers={"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def _jwks_count(port: int) -> float:
    status, body = _get(port, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body[:500]
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "mana_auth_request_duration_seconds_count" and sample.labels.get("route") == "auth-jwks":
                return sample.value
    return 0.0


def _worker_pids(multiproc: Path) -> set[str]:
    """The workers whose own files hold JWKS requests (read from prometheus-client's per-process files)."""
    pids = set()
    for path in multiproc.glob("histogram_*.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample.endswith("_bucket") and labels.get("route") == "auth-jwks" and value > 0:
                pids.add(path.stem.rsplit("_", 1)[1])
    return pids


@pytest.fixture(scope="module", params=["granian", "gunicorn"])
def server(request, tmp_path_factory):
    data = tmp_path_factory.mktemp(f"metrics-{request.param}")
    multiproc = data / "prometheus"
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(MANA_DATA_DIR=str(data), DEBUG="true", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
               AUTH_METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(multiproc),
               AUTH_RATE_LIMIT_ENABLED="false")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True, timeout=180,
                   stdin=subprocess.DEVNULL)
    port = _free_port()
    if request.param == "granian":  # one thread per worker: a sign-in keeps its worker busy, as a sync one
        running = start_server("server", "config.wsgi", cwd=REPO, env=env, logdir=data, ready_path="/healthz",
                               port=port, workers=2, threads=1)
        multiproc = data / "server-prometheus"  # start_server's own directory for the server
    else:
        command = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi",
                   "--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "sync",
                   "--graceful-timeout", "2", "--error-logfile", "-"]
        running = start_process("server", command, url=f"http://127.0.0.1:{port}", cwd=REPO, env=env, logdir=data,
                                ready_path="/healthz")
    try:
        yield port, multiproc, running.process, running.log
    finally:
        running.stop()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_a_scrape_sums_both_workers_and_keeps_a_dead_ones_counts(server):
    port, multiproc, process, log = server
    sent = 0  # the readiness probe asked /healthz
    with ThreadPoolExecutor(max_workers=10) as pool:
        for round_ in range(30):
            # A sign-in (one argon2 hash) keeps a sync worker busy, so the other one accepts the JWKS requests
            # (a fast request alone may be accepted by the same worker every time).
            busy = [pool.submit(_post_login, port, f"nobody-{round_}-{i}@example.com") for i in range(2)]
            statuses = list(pool.map(lambda _: _get(port, JWKS)[0], range(8)))
            assert statuses == [200] * 8
            assert [future.result() for future in busy] == [401, 401]
            sent += 8
            if len(_worker_pids(multiproc)) >= 2:
                break
    assert len(_worker_pids(multiproc)) >= 2, "both workers should have served JWKS requests"
    # Every scrape, whichever worker answers, sums both.
    assert _jwks_count(port) == sent
    assert _jwks_count(port) == sent

    # A worker dies; the server starts another (and the dead one is marked). Its counts stay summed.
    before = _children(process.pid)
    victim = before[0]
    assert list(multiproc.glob(f"gauge_livesum_{victim}.db"))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while victim in _children(process.pid) or len(_children(process.pid)) < 2:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    # The replacement is a child at once but starts up for a second or more (granian marks the dead one in
    # that start-up, before the application loads): wait until it has loaded the application, which makes
    # its own metric files.
    (replacement,) = set(_children(process.pid)) - set(before)
    while not list(multiproc.glob(f"*_{replacement}.db")):
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    for _ in range(4):
        assert _get(port, JWKS)[0] == 200
        sent += 1
    assert _jwks_count(port) == sent
    assert not list(multiproc.glob(f"gauge_livesum_{victim}.db"))


def test_metrics_need_the_token_under_the_server_too(server):
    port = server[0]
    assert _get(port, "/metrics")[0] == 404
    assert _get(port, "/metrics", {"Authorization": "Bearer nope"})[0] == 404


def test_answers_before_common_middleware_say_their_length_under_the_server(server):
    """The JWKS and the health check answer before Django's CommonMiddleware (core.middleware.ContentLengthMiddleware):
    the server sends their bodies with a Content-Length, not in chunks (three socket writes instead of two)."""
    port = server[0]
    for path in (JWKS, "/healthz", "/.well-known/jwks.json"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        assert response.status == 200, (path, body[:200])
        assert response.getheader("Transfer-Encoding") is None, path
        assert response.getheader("Content-Length") == str(len(body)), path
