"""Requests straight into Django's WSGI handler, in this process, as gunicorn calls it: for the CPU
measurements of bench/refresh_cpu.py and bench/login_cpu.py (django.test.Client's signals, cookie jar
and request building would be a large part of what they measure)."""

from __future__ import annotations

import io
import sys

from django.core.handlers.wsgi import WSGIHandler


class Wsgi:
    """``wsgi(method, path, body, **headers) -> (status, content)``; ``authorization=...`` is the header
    Authorization. One client address and User-Agent for every request."""

    def __init__(self):
        self.handler = WSGIHandler()

    def __call__(self, method: str, path: str, body: bytes = b"", **headers) -> tuple[int, bytes]:
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1",
            "HTTP_USER_AGENT": "bench/wsgi_client.py", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": True,
            "wsgi.run_once": False, "CONTENT_LENGTH": str(len(body)),
            **({"CONTENT_TYPE": "application/json"} if body else {}),
            **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
        }
        status = []
        chunks = self.handler(environ, lambda code, _headers, exc_info=None: status.append(code))
        content = b"".join(chunks)
        getattr(chunks, "close", lambda: None)()
        return int(status[0].split()[0]), content
