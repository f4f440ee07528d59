"""The one HTTP helper of the package: urllib from the standard library, JSON in and out, no redirects
(a redirect must never carry an Authorization header to another host), bounded response size."""

from __future__ import annotations

import http.client
import json as jsonlib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mana_auth.errors import TransportError

MAX_BODY = 1024 * 1024
USER_AGENT = "mana-auth-python/0.1"


def check_url(url: str, what: str = "url") -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what} must be an absolute http(s) URL, got {url!r}")
    return url


@dataclass
class Response:
    """An HTTP answer: ``status``, lower-cased ``headers``, raw ``content``; ``json()`` parses it."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        """The parsed body, or None when it is empty or not JSON."""
        if not self.content:
            return None
        try:
            return jsonlib.loads(self.content)
        except ValueError:
            return None

    def error(self) -> tuple[str, str, dict | None]:
        """(code, message, fields) from the contract's error envelope, with fallbacks."""
        body = self.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            fields = error.get("fields")
            return (str(error.get("code") or f"http_{self.status}"), str(error.get("message") or ""),
                    fields if isinstance(fields, dict) else None)
        return f"http_{self.status}", self.text[:200], None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 3xx comes back as the response


_opener = urllib.request.build_opener(_NoRedirect)


def send(method: str, url: str, *, json=None, headers: dict | None = None, timeout: float = 10.0,
         max_body: int = MAX_BODY) -> Response:
    """Send one request; any HTTP status comes back as a Response, no answer raises TransportError."""
    data = None
    all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if json is not None:
        data = jsonlib.dumps(json).encode()
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method.upper())
    try:
        with _opener.open(request, timeout=timeout) as answer:
            return _read(answer, answer.status, max_body)
    except urllib.error.HTTPError as answer:
        with answer:
            return _read(answer, answer.code, max_body)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        # ValueError: http.client's InvalidURL and friends; OSError covers timeouts and resets.
        raise TransportError(f"{method.upper()} {url}: {exc}") from exc


def _read(answer, status: int, max_body: int) -> Response:
    try:
        content = answer.read(max_body + 1)
    except (http.client.HTTPException, OSError) as exc:
        raise TransportError(f"reading the answer failed: {exc}") from exc
    if len(content) > max_body:
        raise TransportError(f"answer larger than {max_body} bytes")
    headers = {key.lower(): value for key, value in answer.headers.items()}
    return Response(status=status, headers=headers, content=content)
