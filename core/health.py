"""Liveness and readiness for load balancers and orchestrators (issue 17, docs/api.md, docs/deploy.md).

``GET /healthz``: the process is alive and answering; no I/O. ``GET /readyz``: the database, Redis and the
Celery broker answer, each with the time it took; 503 when one does not (``ok: false``). Neither says
anything about the configuration: no host names, URLs, versions or error texts (the error goes to the log).

Each check has a short deadline of its own (``READY_CHECK_SECONDS``), so a hung dependency costs the probe
about that much, not the load balancer's whole timeout. Not configured (no Redis, the embedded in-memory
broker) is reported as ``"skipped"`` and does not fail the probe.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection

from core.database import deadline

logger = logging.getLogger(__name__)

READY_CHECK_SECONDS = 2.0


def _timed(name: str, check) -> dict:
    started = time.perf_counter()
    try:
        outcome = check()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the cause goes to the log only
        logger.warning("readiness: %s unavailable: %s", name, type(exc).__name__)
        outcome = "down"
    return {"status": outcome, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> str:
    with deadline(READY_CHECK_SECONDS):
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    return "up"


_clients: dict[str, object] = {}


def _redis_ping(url: str) -> str:
    client = _clients.get(url)
    if client is None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = _clients[url] = redis.Redis.from_url(
            url, socket_connect_timeout=READY_CHECK_SECONDS, socket_timeout=READY_CHECK_SECONDS,
            retry=Retry(NoBackoff(), 0))
    if not client.ping():
        raise ConnectionError("no PONG")
    return "up"


def _redis() -> str:
    url = getattr(settings, "REDIS_URL", "")
    return _redis_ping(url) if url else "skipped"


def _broker() -> str:
    url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    scheme = urlsplit(url).scheme
    if not url or scheme == "memory" or getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return "skipped"
    if scheme in ("redis", "rediss"):
        return _redis_ping(url)
    from kombu import Connection

    with Connection(url, connect_timeout=READY_CHECK_SECONDS) as conn:
        conn.ensure_connection(max_retries=1)
    return "up"


def liveness() -> dict:
    return {"status": "ok"}


def readiness() -> tuple[bool, dict]:
    """(ready, body): every configured dependency answered."""
    checks = {"database": _timed("database", _database), "redis": _timed("redis", _redis)}
    same = getattr(settings, "CELERY_BROKER_URL", None) == getattr(settings, "REDIS_URL", None) \
        and checks["redis"]["status"] != "skipped"
    # The broker on the Redis just checked: its answer (a hung Redis is not waited for twice).
    checks["broker"] = dict(checks["redis"]) if same else _timed("broker", _broker)
    ready = all(check["status"] != "down" for check in checks.values())
    return ready, {"status": "ok" if ready else "unavailable", "checks": checks}
