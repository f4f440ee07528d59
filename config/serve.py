"""The production web server: ``python -m config.serve`` runs granian serving ``config.wsgi``.

granian (https://github.com/emmett-framework/granian) is an HTTP server written in Rust (hyper and tokio):
it parses requests, keeps connections alive and writes answers outside Python, and calls the WSGI
application in a pool of Python threads per worker process. Measured on this service (docs/benchmarks.md,
"fifth pass"), it takes a third or more off the server CPU of a bearer read against gunicorn's gthread
worker, whose pure-Python parser, poller hand-off and selector bookkeeping were half of that CPU; and it
closes a connection whose request head does not arrive within ``WEB_HEADER_TIMEOUT_SECONDS``, where a
gunicorn thread waits with no deadline (docs/security.md, "Slow request heads").

What gunicorn's hooks did (``config/gunicorn.py``, still usable) happens here:

- Metrics in multiprocess mode (core/metrics.py): ``PROMETHEUS_MULTIPROC_DIR`` is set and emptied in the
  master before any worker starts; every worker, when it starts, marks the workers that are gone as dead
  (their live gauges drop out, their counters stay in the sums). granian has no hook in the master when a
  worker exits; a worker that dies is replaced after ``respawn_interval`` and its replacement does it.
- ``gc.freeze()`` once the application is loaded in a worker (config/gunicorn.py's ``post_worker_init``
  explains why).
- Each request's environ without the worker's environment variables, which granian copies into it
  (``without_process_environment``: secrets stay out of ``request.META``).
- ``GUNICORN_TRACEMALLOC``: the memory tracer of config/memtrace.py, per worker (the variables keep
  their names).

Options (the environment gives the defaults; docs/configuration.md, "The web server"):
``--bind HOST:PORT`` (``WEB_BIND``, 127.0.0.1:8000), ``--workers N`` (``WEB_CONCURRENCY``, 4),
``--threads N`` (``WEB_THREADS``, 2: Python threads per worker that run requests), ``WEB_LOG_LEVEL``
(info: the server's own lines, worker starts and stops), ``--app module:name``
(``config.wsgi:application``; the e2e tests serve the example services with it), ``--access-log``.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_APP_VARIABLE = "MANA_WEB_APP"
_WORKER_FILE = re.compile(r"_(\d+)\.db$")

# granian's HTTP/1 buffer: a request head (request line and headers) that outgrows it is refused with 431
# before Python sees it. hyper checks the limit per read, so somewhat more can pass (a 100 KB header did,
# 200 KB was refused: tests/security/test_web_server.py). gunicorn's limits were 4,094 bytes of request line
# and 100 fields of at most 8,190 bytes; 64 KiB holds any legitimate head (a browser's cookies for several
# accounts included).
HEADER_BUFFER_BYTES = 64 * 1024


def multiproc_dir() -> Path:
    return Path(os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR",
        str(Path(os.environ.get("MANA_DATA_DIR", _REPO / "var")) / "prometheus"),
    ))


def reset_multiproc_dir() -> Path:
    """Empty the metrics directory when a server starts: the files of a previous run would be summed too."""
    directory = multiproc_dir()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def forget_dead_workers(directory: Path) -> list[int]:
    """Mark every worker whose metric files are in ``directory`` and whose process is gone as dead."""
    from prometheus_client import multiprocess

    pids = {int(match.group(1)) for name in os.listdir(directory) if (match := _WORKER_FILE.search(name))}
    dead = []
    for pid in sorted(pids - {os.getpid()}):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(directory))
            dead.append(pid)
        except PermissionError:  # alive, another user's: not ours to judge
            pass
    return dead


def worker_application():
    """granian's factory, called once in every worker process: the worker's own start-up, then the app."""
    import importlib
    import multiprocessing.util

    from config import memtrace

    forget_dead_workers(multiproc_dir())
    memtrace_dir, memtrace_seconds, memtrace_frames = memtrace.environment_settings()
    if memtrace_dir:
        memtrace.start(memtrace_dir, memtrace_seconds, frames=memtrace_frames)
        # A worker is a multiprocessing child: atexit does not run in it, multiprocessing's finalizers do.
        multiprocessing.util.Finalize(None, memtrace.stop, exitpriority=10)
    module, _, name = os.environ.get(_APP_VARIABLE, "config.wsgi:application").partition(":")
    application = getattr(importlib.import_module(module), name or "application")
    gc.freeze()
    return without_process_environment(application, dict(os.environ))


def without_process_environment(application, process_environment: dict):
    """The application, called with each request's own environ only. granian starts every request's
    environ from a copy of the worker's environment variables (as CGI and wsgiref do; gunicorn does not),
    so ``request.META`` would carry ``SECRET_KEY``, ``AUTH_KEY_ENCRYPTION_KEY`` and the password in
    ``DATABASE_URL`` into everything that is handed a request. A key whose value is the process's own is
    dropped; what the request itself sets (its headers, path, address) is kept: granian lets the request's
    values win, and a header equal to an environment variable's value is the only thing lost."""
    items = tuple(process_environment.items())

    def call(environ, start_response):
        for key, value in items:
            if environ.get(key) == value:
                del environ[key]
        return application(environ, start_response)

    call.__wrapped__ = application
    return call


def build_server(*, bind: str, workers: int, threads: int, app: str, access_log: bool = False,
                 header_timeout_seconds: float = 10.0):
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    host, _, port = bind.rpartition(":")
    os.environ[_APP_VARIABLE] = app
    return Server(
        "config.serve:worker_application",
        address=host or "127.0.0.1",
        port=int(port),
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, min(60_000, int(header_timeout_seconds * 1000))),
            keep_alive=True,
            max_buffer_size=HEADER_BUFFER_BYTES,
        ),
        log_level=LogLevels(os.environ.get("WEB_LOG_LEVEL", "info").lower()),
        log_access=access_log,
        respawn_failed_workers=True,
        respawn_interval=1.0,
        workers_kill_timeout=int(os.environ.get("WEB_GRACEFUL_SECONDS", "10")),
        factory=True,
        working_dir=Path.cwd(),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m config.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default=os.environ.get("WEB_BIND", "127.0.0.1:8000"))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "4")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("WEB_THREADS", "2")))
    parser.add_argument("--app", default="config.wsgi:application")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)

    reset_multiproc_dir()
    server = build_server(bind=args.bind, workers=args.workers, threads=args.threads, app=args.app,
                          access_log=args.access_log,
                          header_timeout_seconds=float(os.environ.get("WEB_HEADER_TIMEOUT_SECONDS", "10")))
    server.serve()


if __name__ == "__main__":
    main()
