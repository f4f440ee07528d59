"""config/serve.py's worker start-up, in this process (the server itself: tests/security/test_web_server.py,
tests/core/test_metrics_server.py)."""

from __future__ import annotations

import gc
import os
import subprocess

import pytest

from config import serve


@pytest.fixture
def frozen_objects_restored():
    yield
    gc.unfreeze()


def test_the_worker_factory_loads_the_application_then_freezes_it(monkeypatch, tmp_path, frozen_objects_restored):
    monkeypatch.setattr(serve, "multiproc_dir", lambda: tmp_path)
    monkeypatch.delenv("GUNICORN_TRACEMALLOC", raising=False)
    monkeypatch.delenv(serve._APP_VARIABLE, raising=False)
    before = gc.get_freeze_count()
    application = serve.worker_application()
    from config.wsgi import application as expected

    assert application.__wrapped__ is expected
    assert gc.get_freeze_count() > before


def test_the_factory_serves_the_app_it_is_told(monkeypatch, tmp_path, frozen_objects_restored):
    monkeypatch.setattr(serve, "multiproc_dir", lambda: tmp_path)
    monkeypatch.setenv(serve._APP_VARIABLE, "tests.core.test_serve:sample_app")
    assert serve.worker_application().__wrapped__ is sample_app


def sample_app(environ, start_response):  # pragma: no cover - only looked up
    raise AssertionError


def test_a_starting_worker_marks_gone_workers_dead(tmp_path):
    """Their live gauges drop out of the sums; their counters and histograms stay."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    alive = os.getpid()
    for pid in (gone.pid, alive):
        for kind in ("counter", "histogram", "gauge_livesum", "gauge_liveall"):
            (tmp_path / f"{kind}_{pid}.db").write_bytes(b"")
    assert serve.forget_dead_workers(tmp_path) == [gone.pid]
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == sorted([f"counter_{gone.pid}.db", f"histogram_{gone.pid}.db"]
                          + [f"{kind}_{alive}.db" for kind in ("counter", "histogram", "gauge_livesum",
                                                               "gauge_liveall")])


def test_the_bind_address_is_split_for_granian(monkeypatch):
    monkeypatch.setenv(serve._APP_VARIABLE, "config.wsgi:application")  # build_server sets it for the workers
    server = serve.build_server(bind="127.0.0.1:8123", workers=3, threads=2, app="config.wsgi:application")
    assert (server.bind_addr, server.bind_port, server.workers, server.blocking_threads) == ("127.0.0.1", 8123, 3, 2)
    assert server.factory and server.respawn_failed_workers
    assert server.http1_settings.max_buffer_size == serve.HEADER_BUFFER_BYTES
    assert server.http1_settings.header_read_timeout == 10_000


def test_the_application_sees_the_request_not_the_process_environment():
    """granian builds each environ as ``dict(os.environ) | request``: the secrets of the environment must
    not reach ``request.META``; the request's own keys, even one an environment variable also names, stay."""
    process = {"SECRET_KEY": "s3cret", "DATABASE_URL": "postgres://u:pw@db/x", "PATH": "/usr/bin",
               "HTTP_PROXY": "http://proxy.internal:3128", "SERVER_NAME": "from-env"}
    seen = []

    def app(environ, start_response):
        seen.append(dict(environ))
        return [b""]

    wrapped = serve.without_process_environment(app, process)
    request = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "HTTP_AUTHORIZATION": "Bearer t", "SERVER_NAME": "auth"}
    assert wrapped(process | request, None) == [b""]
    assert seen == [request]
    # A header the client sent wins over the environment variable of the same name, and is kept.
    seen.clear()
    wrapped(process | {**request, "HTTP_PROXY": "client-sent"}, None)
    assert seen[0]["HTTP_PROXY"] == "client-sent" and "SECRET_KEY" not in seen[0]
