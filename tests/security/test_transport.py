"""Transport and browser security: headers, CSP, no-store, CORS, CSRF, check --deploy."""

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import get_resolver
from rest_framework.authentication import SessionAuthentication
from rest_framework.test import APIClient


ROOT = Path(__file__).resolve().parents[2]


def test_security_headers_on_api_responses(api):
    response = api.get("/api/v1/auth/jwks")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_hsts_and_https_redirect_outside_debug(settings, api):
    secure = api.get("/api/v1/auth/jwks", secure=True)
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000; includeSubDomains")
    settings.SECURE_SSL_REDIRECT = True
    response = APIClient().get("/api/v1/auth/jwks")  # a new client: SecurityMiddleware reads settings at start
    assert response.status_code == 301 and response["Location"].startswith("https://")


def test_strict_content_security_policy(client):
    response = client.get("/api/v1/auth/jwks")
    directives = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["form-action"] == "'self'"
    assert directives["base-uri"] == "'none'" and directives["object-src"] == "'none'"
    script = directives["script-src"].split()
    assert "'self'" in script and "'unsafe-inline'" not in script


def test_csp_nonce_is_available_to_pages(rf):
    from csp.middleware import CSPMiddleware
    from django.http import HttpResponse

    request = rf.get("/")
    seen = {}

    def view(req):
        seen["nonce"] = str(req.csp_nonce)
        return HttpResponse("<script nonce='%s'></script>" % req.csp_nonce)

    response = CSPMiddleware(view)(request)
    assert seen["nonce"] and f"'nonce-{seen['nonce']}'" in response["Content-Security-Policy"]


def test_token_and_secret_responses_are_no_store(api, user, password):
    response = api.post("/api/v1/auth/login", {"email": user.email, "password": password}, format="json")
    assert "no-store" in response["Cache-Control"]
    refreshed = api.post("/api/v1/auth/refresh", {"refreshToken": response.json()["refreshToken"]}, format="json")
    assert "no-store" in refreshed["Cache-Control"]


def test_cors_only_for_configured_origins(settings, api):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    allowed = api.get("/api/v1/auth/jwks", HTTP_ORIGIN="https://app.example.com")
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Access-Control-Allow-Credentials" not in allowed
    other = api.get("/api/v1/auth/jwks", HTTP_ORIGIN="https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in other
    preflight = api.options("/api/v1/auth/login", HTTP_ORIGIN="https://app.example.com",
                            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert preflight["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Access-Control-Allow-Origin" not in api.options(
        "/api/v1/auth/login", HTTP_ORIGIN="https://evil.example.net", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")


def _api_views():
    def walk(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns)
            else:
                cls = getattr(pattern.callback, "cls", None)
                if cls is not None:
                    yield cls
    return list(walk(get_resolver().url_patterns))


def _cookie_auth_classes_checked():
    views = _api_views()
    assert len(views) > 15
    cookie_classes = set()
    for view in views:
        for auth_class in view().get_authenticators():
            auth_class = type(auth_class)
            # Classes that read the browser's cookie (a bearer of a device session carries no cookie).
            if issubclass(auth_class, SessionAuthentication) or "cookie" in auth_class.__name__.lower():
                checks = auth_class.enforce_csrf is SessionAuthentication.enforce_csrf or (
                    "CSRFCheck" in inspect.getsource(auth_class.enforce_csrf))
                calls = issubclass(auth_class, SessionAuthentication) and (
                    auth_class.authenticate is SessionAuthentication.authenticate) or (
                    "self.enforce_csrf(request)" in inspect.getsource(auth_class.authenticate))
                assert checks and calls, (view, auth_class)
                cookie_classes.add(auth_class)
    return cookie_classes


def test_no_api_view_authenticates_by_cookie_without_csrf():
    """DRF exempts its views from Django's CSRF middleware and checks CSRF in the authentication
    class instead: every cookie-based class must check it on unsafe methods."""
    _cookie_auth_classes_checked()


def test_bearer_requests_need_no_csrf_token(authed):
    from django.test import Client

    assert authed.patch("/api/v1/auth/me", {"name": "x"}, format="json").status_code == 200
    assert Client(enforce_csrf_checks=True).post("/api/v1/auth/login", {}, content_type="application/json").status_code == 400


@pytest.mark.skipif(not (ROOT / ".venv/bin/python").exists(), reason="needs the project venv")
def test_check_deploy_has_zero_warnings_with_production_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG")}
    env.update(DEBUG="false", SECRET_KEY="x" * 20 + "production-secret-key-1234567890abcdefghijklmnop",
               AUTH_KEY_ENCRYPTION_KEY="q" * 43, ALLOWED_HOSTS="auth.example.com",
               AUTH_PUBLIC_URL="https://auth.example.com", MANA_DATA_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    # Zero warnings from the defenses' settings and packages (the whole project is CI's `.ci/run`).
    output = result.stdout + result.stderr
    ours = [line for line in output.splitlines()
            if any(f"({prefix}" in line for prefix in ("security.", "axes.", "django_ratelimit.", "csp.", "corsheaders."))]
    assert ours == [], output


@pytest.mark.redis
def test_with_redis_check_deploy_passes_with_nothing_silenced(tmp_path):
    """The production shape (REDIS_URL set): django-redis is a cache django-ratelimit supports, so no
    check of any package is silenced, and none warns."""
    from django.conf import settings

    # DJANGO_ALLOW_ASYNC_UNSAFE: set in this process by the Playwright tests, never in production.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(DEBUG="false", SECRET_KEY="x" * 20 + "production-secret-key-1234567890abcdefghijklmnop",
               AUTH_KEY_ENCRYPTION_KEY="q" * 43, ALLOWED_HOSTS="auth.example.com", REDIS_URL=settings.REDIS_URL,
               AUTH_PUBLIC_URL="https://auth.example.com", MANA_DATA_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output
