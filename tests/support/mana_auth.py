"""The client library's test kit: Ed25519 keys, a token signer that writes any header, a fake clock,
and tiny HTTP servers (http.server in a thread on 127.0.0.1, ephemeral port) standing in for the provider."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "manacore"
AUDIENCE = "manacore"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Server(ThreadingHTTPServer):
    # The races send 16 requests at once: the default listen backlog of 5 overflowed on a busy machine and
    # a connection was reset (tests/mana_auth/test_client.py, once in CI).
    request_queue_size = 64


@dataclass
class Key:
    kid: str
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def jwk(self) -> dict:
        x = b64url(self.private.public_key().public_bytes_raw())
        return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA", "use": "sig"}


def encode(header: dict, claims, sign) -> str:
    """A compact JWS with exactly this header; ``sign(signing_input) -> bytes`` (None: empty signature)."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(payload)}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64url(signature)}"


def claims_for(**overrides) -> dict:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": str(uuid.uuid4()), "email": "user1@example.com", "role": "user",
              "sid": str(uuid.uuid4()), "iat": now, "exp": now + 900, "jti": uuid.uuid4().hex}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def make_token(key: Key, header: dict | None = None, **claim_overrides) -> str:
    hdr = {"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt", **(header or {})}
    return encode(hdr, claims_for(**claim_overrides), key.private.sign)


def hmac_token(secret: bytes, header: dict | None = None, **claim_overrides) -> str:
    hdr = {"alg": "HS256", "typ": "at+jwt", **(header or {})}
    return encode(hdr, claims_for(**claim_overrides), lambda m: hmac.new(secret, m, hashlib.sha256).digest())


class FakeServer:
    """An HTTP server whose routes are plain functions ``(handler, body) -> (status, headers, json)``;
    counts hits per path. ``stop()`` makes it unreachable (connection refused)."""

    def __init__(self):
        self.routes: dict[tuple[str, str], object] = {}
        self.hits: dict[str, int] = {}
        self.requests: list[tuple[str, str, dict, object]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?")[0]
                with server._lock:
                    server.hits[path] = server.hits.get(path, 0) + 1
                    server.requests.append((self.command, path, dict(self.headers), body))
                route = server.routes.get((self.command, path))
                if route is None:
                    status, headers, payload = 404, {}, {"error": {"code": "not_found", "message": "Not found."}}
                else:
                    status, headers, payload = route(self, body)
                if payload is None or isinstance(payload, bytes):
                    data = payload or b""
                else:
                    data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _handle

            def log_message(self, *args):
                pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        self._running = True

    def route(self, method: str, path: str):
        def register(func):
            self.routes[(method, path)] = func
            return func

        return register

    def stop(self):
        if self._running:
            self._running = False
            self.httpd.shutdown()
            self.httpd.server_close()


class JwksServer:
    """The provider's JWKS endpoint: ``keys`` is the published list, ``cache_control`` its header."""

    path = "/api/v1/auth/jwks"

    def __init__(self, fake: FakeServer, keys: list[Key]):
        self.fake = fake
        self.keys = list(keys)
        self.extra_jwks: list[dict] = []
        self.cache_control: str | None = "public, max-age=300"
        self.status = 200
        self.url = fake.url + self.path
        fake.route("GET", self.path)(self._serve)

    def _serve(self, handler, body):
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        if self.status != 200:
            return self.status, {}, b"<html>bad gateway</html>"
        return 200, headers, {"keys": [k.jwk for k in self.keys] + self.extra_jwks}

    @property
    def fetches(self) -> int:
        return self.fake.hits.get(self.path, 0)


class FakeClock:
    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
