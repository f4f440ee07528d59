"""The PostgreSQL backend with a client-side deadline (``ENGINE = "core.database"``), and the timeouts
of this process: a few seconds for web requests, longer for Celery jobs and management commands
(docs/deploy.md, "Timeouts")."""

from __future__ import annotations

import contextlib
import os
import threading

# The kind of process, set by its entry point before Django starts: "web" (the web server, tests) or "job"
# (manage.py commands but runserver, the Celery worker and beat). Jobs get the long timeouts.
PROCESS_KIND_ENV = "MANA_PROCESS_KIND"

_local = threading.local()


def process_is_job() -> bool:
    return os.environ.get(PROCESS_KIND_ENV) == "job"


def mark_job_process() -> None:
    """Called by the entry points of jobs (manage.py, config/celery.py) before settings are read."""
    os.environ.setdefault(PROCESS_KIND_ENV, "job")


@contextlib.contextmanager
def deadline(seconds: float):
    """Narrow this thread's client-side database deadline (e.g. the readiness probe: 2 s)."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = seconds if previous is None else min(previous, seconds)
    try:
        yield
    finally:
        _local.deadline = previous


def thread_deadline() -> float | None:
    return getattr(_local, "deadline", None)
