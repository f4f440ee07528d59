"""A local k-anonymity range server and breach files for the breached-password tests (never the internet)."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Long, uncommon and unlike any test email or name: refused only by the breach sources.
BREACHED = "Tr0ub4dor&3-Staple-Orbit"
CLEAN = "Quiet-Lantern-Meadow-5821"


def sha1(password: str) -> str:
    return hashlib.sha1(password.encode()).hexdigest().upper()


def breach_file(path, entries: dict[str, int | None], *, newline: str = "\n", lower: bool = False):
    """A file of SHA1[:COUNT] lines sorted by hash; ``None`` writes a bare hash. Keys are passwords
    or 40-hex hashes."""
    lines = []
    for key, count in entries.items():
        digest = key if len(key) == 40 and all(c in "0123456789ABCDEF" for c in key) else sha1(key)
        lines.append((digest, count))
    lines.sort()
    text = newline.join(((d.lower() if lower else d) + ("" if c is None else f":{c}")) for d, c in lines)
    path.write_text(text + newline)
    return path


@dataclass
class RangeServer:
    """``GET /range/<PREFIX>`` answers the ``SUFFIX:COUNT`` lines of ``counts`` (password -> count)
    with that prefix plus padding lines of count 0; ``mode`` makes it misbehave."""

    counts: dict[str, int] = field(default_factory=dict)
    mode: str = "ok"  # ok | status:<code> | garbage | slow | redirect | huge
    requests: list[dict] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def body(self, prefix: str) -> bytes:
        lines = [f"{h[5:]}:{c}" for h, c in ((sha1(p), c) for p, c in self.counts.items()) if h[:5] == prefix]
        lines += [f"{i:035X}:0" for i in range(3)]  # what Add-Padding mixes in
        return "\r\n".join(lines).encode()


def start_range_server(server_state: RangeServer):
    state = server_state

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            state.requests.append({"path": self.path, "headers": dict(self.headers)})
            prefix = self.path.rsplit("/", 1)[-1]
            if state.mode == "slow":
                state.release.wait(5)
                return self._send(200, state.body(prefix))
            if state.mode.startswith("status:"):
                return self._send(int(state.mode.split(":")[1]), b"nope")
            if state.mode == "garbage":
                return self._send(200, b"<html>rate limited</html>")
            if state.mode == "redirect":
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if state.mode == "huge":
                return self._send(200, (f"{0:035X}:0\r\n" * 40000).encode())
            return self._send(200, state.body(prefix))

        def _send(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:  # the client gave up (timeout tests)
                pass

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/range"

    def stop():
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)

    return stop


# --- fixtures (import them into a test module to use them) -----------------------------------------------
import pytest  # noqa: E402


@pytest.fixture
def range_server():
    state = RangeServer()
    stop = start_range_server(state)
    yield state
    stop()


@pytest.fixture
def breach_settings(settings):
    """``breach_settings(**options)`` sets ACCOUNTS breach options for the test (keys without BREACH_)."""

    def apply(**options):
        settings.ACCOUNTS = {**settings.ACCOUNTS, **{f"BREACH_{k.upper()}": v for k, v in options.items()}}

    return apply


@pytest.fixture
def breached_file(tmp_path, breach_settings):
    """The file source on, knowing BREACHED (seen 42 times) and nothing else of ours."""
    path = breach_file(tmp_path / "pwned.txt", {BREACHED: 42, "another-leaked-password": 3, "0" * 40: 1})
    breach_settings(file=str(path))
    return path
