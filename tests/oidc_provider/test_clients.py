"""Registering clients: ``manage.py create_oidc_client`` (the contract's one JSON line) and the admin."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from audit.models import AuditEvent, EventType
from core.tokens import hash_token
from oidc_provider.models import OidcClient
from tests.factories import UserFactory
from tests.support.auth import page_login


def run(*args) -> dict:
    out = StringIO()
    call_command("create_oidc_client", *args, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_command_confidential_client():
    out = run("Grafana", "--redirect-uri", "https://grafana.example.com/login/generic_oauth",
              "--redirect-uri", "http://localhost:3000/login/generic_oauth",
              "--post-logout-redirect-uri", "https://grafana.example.com/login", "--first-party")
    assert set(out) == {"clientId", "clientSecret"}
    client = OidcClient.objects.get(client_id=out["clientId"])
    assert client.secret_hash == hash_token(out["clientSecret"]) and out["clientSecret"] not in client.secret_hash
    assert client.check_client_secret(out["clientSecret"]) and not client.check_client_secret("nope")
    assert client.redirect_uris == ["https://grafana.example.com/login/generic_oauth",
                                    "http://localhost:3000/login/generic_oauth"]
    assert client.post_logout_redirect_uris == ["https://grafana.example.com/login"]
    assert client.is_first_party and not client.is_public
    assert client.allowed_scopes == ["openid", "profile", "email", "offline_access"]
    assert AuditEvent.objects.filter(event=EventType.OIDC_CLIENT_CREATED).count() == 1


def test_command_public_client_has_no_secret():
    out = run("SPA", "--redirect-uri", "https://app.example.com/cb", "--public")
    assert set(out) == {"clientId"}
    client = OidcClient.objects.get(client_id=out["clientId"])
    assert client.is_public and client.secret_hash == "" and not client.check_client_secret("")
    assert not client.is_first_party


@pytest.mark.parametrize("args", [
    ("X",),  # no redirect URI
    ("X", "--redirect-uri", "http://example.com/cb"),  # http only for loopback
    ("X", "--redirect-uri", "https://example.com/cb#frag"),
    ("X", "--redirect-uri", "javascript:alert(1)"),
    ("", "--redirect-uri", "https://example.com/cb"),
    ("X", "--redirect-uri", "https://example.com/cb", "--scope", "admin"),
])
def test_command_refuses_bad_input(args):
    with pytest.raises(CommandError):
        run(*args)
    assert not OidcClient.objects.exists()


def staff_browser():
    staff = UserFactory(is_staff=True, is_superuser=True)
    browser = Client()
    assert page_login(browser, staff.email).status_code == 302
    return browser


def test_admin_registers_a_client_and_shows_the_secret_once():
    browser = staff_browser()
    response = browser.post("/admin/oidc_provider/oidcclient/add/", {
        "name": "Wiki", "redirect_uris": "https://wiki.example.com/cb\nhttps://wiki.example.com/cb2",
        "post_logout_redirect_uris": "", "allowed_scopes": ["openid", "email"], "id_token_alg": "EdDSA"})
    assert response.status_code == 200
    client = OidcClient.objects.get(name="Wiki")
    assert client.redirect_uris == ["https://wiki.example.com/cb", "https://wiki.example.com/cb2"]
    assert client.allowed_scopes == ["openid", "email"] and client.id_token_alg == "EdDSA"
    page = response.content.decode()
    secret = page.split("secret ", 1)[1].split(" ", 1)[0]
    assert client.check_client_secret(secret)
    assert "no-store" in response["Cache-Control"]
    listing = browser.get("/admin/oidc_provider/oidcclient/").content.decode()
    assert secret not in listing


def test_admin_changes_a_client_through_the_service():
    browser = staff_browser()
    client = OidcClient.objects.get(client_id=run("Wiki", "--redirect-uri", "https://wiki.example.com/cb")["clientId"])
    response = browser.post(f"/admin/oidc_provider/oidcclient/{client.pk}/change/", {
        "name": "Wiki 2", "redirect_uris": "https://wiki.example.com/new", "post_logout_redirect_uris": "",
        "allowed_scopes": ["openid"], "id_token_alg": "RS256", "is_active": "on"})
    assert response.status_code == 302, response.content[:2000]
    client.refresh_from_db()
    assert client.name == "Wiki 2" and client.redirect_uris == ["https://wiki.example.com/new"]
    assert AuditEvent.objects.filter(event=EventType.OIDC_CLIENT_UPDATED).count() == 1
    bad = browser.post(f"/admin/oidc_provider/oidcclient/{client.pk}/change/", {
        "name": "Wiki 2", "redirect_uris": "http://wiki.example.com/new", "allowed_scopes": ["openid"],
        "id_token_alg": "RS256"})
    assert bad.status_code == 200 and b"https" in bad.content


def test_expired_codes_are_deleted_a_day_later(browser, confidential):
    from datetime import timedelta

    from django.utils import timezone

    from oidc_provider.models import AuthorizationCode
    from oidc_provider.tasks import oidc_codes_cleanup
    from tests.support.oidc import begin, relying_party

    client, secret = confidential
    browser.get(begin(relying_party(client.client_id, secret))["path"])
    assert oidc_codes_cleanup.delay().get() == 0
    AuthorizationCode.objects.update(expires_at=timezone.now() - timedelta(days=1, minutes=1))
    assert oidc_codes_cleanup.delay().get() == 1 and not AuthorizationCode.objects.exists()
