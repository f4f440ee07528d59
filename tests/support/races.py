"""The one race harness: calls (or HTTP requests) released at the same moment in threads.

``race(*calls)`` runs each zero-argument callable in a thread of its own. A barrier lines the threads
up so they start together; each thread closes its database connections when done (a thread has its
own connection, so a race that touches the database needs ``transactional_db``: in the suite, tests
marked ``postgres`` get it). The results come back in the order of ``calls``. An exception raised by a
call fails the test with every traceback, unless its type is in ``expected``: then the exception is
the result in its place. A thread still running after ``timeout`` seconds fails the test.

``http_race(requests)`` sends ``(method, url, token, body)`` requests (to the live server) the same
way and returns a ``Reply`` for each; ``request()`` sends one.
"""

from __future__ import annotations

import json
import threading
import traceback
import urllib.error
import urllib.request
from functools import partial
from typing import Any, NamedTuple

TIMEOUT = 60.0
# The live server's middleware is built with the production posture (HTTPS redirect) before a test's
# settings apply: requests arrive as through a TLS-terminating proxy (the tests that use the live
# server set SECURE_PROXY_SSL_HEADER accordingly).
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


def race(*calls, expected: tuple[type[BaseException], ...] = (), timeout: float = TIMEOUT) -> list:
    from django.db import connections

    barrier = threading.Barrier(len(calls), timeout=timeout)
    results: list[Any] = [None] * len(calls)
    failures: list[str] = []

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except expected as exc:
            results[index] = exc
        except BaseException:  # noqa: BLE001 - reported below, with its traceback
            failures.append(f"call {index}:\n{traceback.format_exc()}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index, call), daemon=True) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    stuck = [index for index, thread in enumerate(threads) if thread.is_alive()]
    assert not stuck, f"calls {stuck} still running after {timeout:.0f}s"
    assert not failures, "\n".join(failures)
    return results


class Reply(NamedTuple):
    status: int
    body: Any  # the parsed JSON; None for an empty body; bytes if it was not JSON

    @property
    def code(self) -> str | None:
        """The error code of the contract's envelope, if the body is one."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None

    @property
    def summary(self) -> tuple:
        """``(status, body)`` for a success, ``(status, error code)`` for a refusal."""
        return (self.status, self.body if self.status < 400 else self.code)


def request(method: str, url: str, *, token: str | None = None, body=None, timeout: float = 30) -> Reply:
    headers = dict(PROXY_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    prepared = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(prepared, timeout=timeout) as response:
            return Reply(response.status, _parse(response.read()))
    except urllib.error.HTTPError as error:
        return Reply(error.code, _parse(error.read()))


def _parse(raw: bytes):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def http_race(requests, *, timeout: float = TIMEOUT) -> list[Reply]:
    """Send ``[(method, url, token, body), ...]`` at the same moment; a ``Reply`` for each, in order."""
    return race(*(partial(request, method, url, token=token, body=body) for method, url, token, body in requests),
                timeout=timeout)
