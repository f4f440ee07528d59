"""What bench/refresh_cpu.py and bench/login_cpu.py share: the environment of bench/run_api.sh, a bench
user, and requests straight into Django's WSGI handler, in this process, as gunicorn calls it
(django.test.Client's signals, cookie jar and request building would be a large part of what they measure).

    sys.path.insert(0, <repository root>)
    from bench.wsgi_client import django_setup
    django_setup()
"""

from __future__ import annotations

import io
import os
import sys

from django.core.handlers.wsgi import WSGIHandler

CHEAP_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # microseconds: what is left is the rest


def django_setup() -> None:
    """bench/run_api.sh's posture (DEBUG off, rate limits off) and keys (the bench database's signing keys are
    encrypted under them), where the environment does not say otherwise; then ``django.setup()``."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("AUTH_RATE_LIMIT_ENABLED", "false")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-6d1f0c2a9b8e4f3aa7c5d2e1b0f9a8c7d6e5f4a3b2c1d0e9")
    os.environ.setdefault("AUTH_KEY_ENCRYPTION_KEY", "YmVuY2gtb25seS1rZXktZW5jcnlwdGlvbi1rZXktMzJi")
    import django

    django.setup()


def bench_user(email: str, password: str):
    """The verified user ``email``, created if missing, its password set with the hasher in force now."""
    from django.utils import timezone

    from accounts.models import User

    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, password, name="Bench", email_verified_at=timezone.now())
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


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
