"""gunicorn settings for the web service: ``gunicorn -c config/gunicorn.py config.wsgi``.

The production server is granian (``python -m config.serve``, config/serve.py); this file stays for
deployments that still run gunicorn, which must sit behind a proxy that reads request heads first
(docs/security.md, "Slow request heads").

Metrics in multiprocess mode (core/metrics.py): every worker writes its counters to files under
``PROMETHEUS_MULTIPROC_DIR`` and a scrape, whichever worker answers it, sums them all. The variable must
be set before anything imports ``prometheus_client``, so it is set here, in the master, before the
workers load the application; the directory is emptied when the master starts (the files of a previous
run would be summed too), and a worker that exits is marked dead so its live gauges drop out (its
counters stay in the sums). Everything else can be given on the command line as usual (``-w``,
``--threads``, ``-b``); the defaults below are the README's.

``GUNICORN_TRACEMALLOC=<directory>`` (off when unset) traces every worker's memory and writes a report
every ``GUNICORN_TRACEMALLOC_SECONDS`` (120) to ``<directory>/memtrace-<pid>.txt``, with
``GUNICORN_TRACEMALLOC_FRAMES`` frames per traced allocation (1; 0: allocator and RSS only, no tracing)
(config/memtrace.py; docs/operations.md "Memory"). For soaks and investigations: tracing slows every allocation.
"""

import gc
import os

from config import memtrace
from config.serve import multiproc_dir, reset_multiproc_dir

multiproc_dir()  # PROMETHEUS_MULTIPROC_DIR, set before the workers load the application

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "gthread"
threads = 2

_memtrace, _memtrace_seconds, _memtrace_frames = memtrace.environment_settings()


def on_starting(server):
    reset_multiproc_dir()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):
    if _memtrace:
        memtrace.start(_memtrace, _memtrace_seconds, frames=_memtrace_frames)


def post_worker_init(worker):
    """The application is loaded: move everything it made so far (about 160,000 objects: modules,
    URL patterns, settings, serializers' classes) out of the collector's sight (``gc.freeze``). The
    oldest generation is collected only once the objects promoted into it since the last full run
    reach a quarter of those that survived it; with the start-up objects counted that is some 40,000,
    so the reference cycles of finished requests (DRF serializers and their fields, Django requests)
    piled up in it for tens of minutes, a slow RSS climb in a soak (issue 16, docs/operations.md
    "Memory"). Frozen, they are neither counted nor scanned: full collections come early and cost
    little."""
    gc.freeze()


def worker_exit(server, worker):
    if _memtrace:
        memtrace.stop()
