"""A small HTTP client for tests against a real server process (tests/faults, bench/chaos.py): http.client,
JSON, timing, and a browser-like cookie jar that keeps every cookie whatever its Secure flag (the test
server speaks plain HTTP in the production posture, where cookies are Secure and ``__Host-``)."""

from __future__ import annotations

import http.client
import json as jsonlib
import re
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    content: bytes
    seconds: float
    cookies: list[str] = field(default_factory=list)  # the raw Set-Cookie headers

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        try:
            return jsonlib.loads(self.content)
        except ValueError:
            return None

    @property
    def code(self) -> str | None:
        body = self.json()
        return body.get("error", {}).get("code") if isinstance(body, dict) else None


def call(method: str, url: str, *, json=None, form: dict | None = None, headers: dict | None = None,
         timeout: float = 30.0) -> Reply:
    """One request on a new connection; any status comes back (no redirects followed)."""
    parts = urlsplit(url)
    body = None
    all_headers = {"Accept": "application/json, text/html", "Connection": "close", **(headers or {})}
    if json is not None:
        body, all_headers["Content-Type"] = jsonlib.dumps(json).encode(), "application/json"
    elif form is not None:
        body, all_headers["Content-Type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
    started = time.monotonic()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=all_headers)
        answer = conn.getresponse()
        content = answer.read()
        cookies = answer.msg.get_all("Set-Cookie") or []
        return Reply(answer.status, {k.lower(): v for k, v in answer.getheaders()}, content,
                     time.monotonic() - started, cookies)
    finally:
        conn.close()


class Browser:
    """Cookies and the CSRF token of one browser, against ``base`` (plain HTTP)."""

    def __init__(self, base: str, *, ip: str | None = None):
        self.base = base
        self.ip = ip  # sent as X-Forwarded-For (for a server that trusts one proxy)
        self.jar: dict[str, str] = {}

    def _keep(self, reply: Reply) -> Reply:
        for raw in reply.cookies:
            cookie = SimpleCookie()
            cookie.load(raw)
            for name, morsel in cookie.items():
                if morsel["max-age"] == "0" or (morsel["expires"] and "1970" in morsel["expires"]):
                    self.jar.pop(name, None)
                else:
                    self.jar[name] = morsel.value
        return reply

    def _headers(self, extra: dict | None = None) -> dict:
        headers = dict(extra or {})
        if self.ip:
            headers["X-Forwarded-For"] = self.ip
        if self.jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        return headers

    def get(self, path: str, *, keep: bool = True, **kwargs) -> Reply:
        """``keep=False``: the cookies the answer sets (or deletes) are not applied."""
        reply = call("GET", self.base + path, headers=self._headers(kwargs.pop("headers", None)), **kwargs)
        return self._keep(reply) if keep else reply

    def post_form(self, path: str, form: dict) -> Reply:
        csrf = next((v for k, v in self.jar.items() if k.endswith("csrftoken")), "")
        return self._keep(call("POST", self.base + path, form=form,
                               headers=self._headers({"X-CSRFToken": csrf, "Referer": self.base + path})))

    def page_login(self, email: str, password: str) -> Reply:
        page = self.get("/login")
        assert page.status == 200, page.text[:500]
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        reply = self.post_form("/login", {**hidden, "email": email, "password": password})
        assert reply.status == 302, (reply.status, reply.text[:500])
        return reply

    def cookie(self, suffix: str) -> str | None:
        return next((v for k, v in self.jar.items() if k.endswith(suffix)), None)

    def cache_cookie(self) -> str | None:
        return self.cookie("mca_cache") or next((v for k, v in self.jar.items() if "cache" in k), None)
