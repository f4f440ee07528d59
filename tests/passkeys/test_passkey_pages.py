"""Passkeys on the pages (Django test client; tests/browser/test_passkeys_browser.py drives Chromium):
"Sign in with a passkey" on /login, the passkey step of /login/two-factor, add / rename / remove on
/account/two-factor (fresh session), and no inline script anywhere (the CSP)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from django.conf import settings
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent, EventType
from passkeys.models import Passkey
from sessions_app.models import DeviceSession
from tests.factories import UserFactory
from tests.passkeys.test_passkeys_api import LOGIN_OPTIONS, PASSKEYS, register
from tests.support.auth import page_login, session_cookie
from tests.support.webauthn import SoftAuthenticator

SCRIPT = re.compile(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", re.S)


def executable_inline_scripts(html: str) -> list[str]:
    return [m.group(0) for m in SCRIPT.finditer(html)
            if "src=" not in m.group("attrs") and 'type="application/json"' not in m.group("attrs")]


def passkey_page_sign_in(client: Client, authenticator: SoftAuthenticator, **knobs):
    ceremony = client.post(LOGIN_OPTIONS, content_type="application/json").json()
    credential = authenticator.get(ceremony["options"], **knobs)
    return client.post("/login/passkey", {"ceremony_id": ceremony["ceremonyId"], "credential": json.dumps(credential),
                                          "next": "/account/two-factor"})


def test_the_login_page_offers_a_passkey_from_a_static_script(db):
    html = Client().get("/login").content.decode()
    assert "Sign in with a passkey" in html and 'id="passkey-sign-in"' in html
    assert re.search(r'<script src="/static/web/passkeys[^"]*\.js" nonce="[^"]+" defer>', html)
    assert executable_inline_scripts(html) == []


def test_sign_in_with_a_passkey_on_the_page(db):
    user = UserFactory()
    authenticator, _ = register(user)
    client = Client()
    response = passkey_page_sign_in(client, authenticator)
    assert response.status_code == 302 and response["Location"] == "/account/two-factor"
    assert session_cookie(client) is not None
    page = client.get("/account/two-factor").content.decode()
    assert "Laptop" in page and "Last used" in page
    row = DeviceSession.objects.get(user=user, device_name__isnull=False, amr=["hwk", "user", "mfa"])
    assert row.revoked_at is None


def test_a_refused_passkey_on_the_page_says_so_and_signs_nobody_in(db):
    user = UserFactory()
    authenticator, _ = register(user)
    client = Client()
    response = passkey_page_sign_in(client, authenticator, origin="https://evil.example")
    assert response.status_code == 401 and "could not be used" in response.content.decode()
    assert session_cookie(client) in (None, "") or not session_cookie(client).value
    assert AuditEvent.objects.filter(event=EventType.PASSKEY_REFUSED, subject_id=user.pk).exists()
    bad = client.post("/login/passkey", {"ceremony_id": "nope", "credential": "{"})
    assert bad.status_code == 401


def _csrf(client: Client) -> str:
    """The CSRF cookie's value, as passkeys.js sends it (X-CSRFToken) from the form's token."""
    client.get("/account/two-factor")
    cookie = client.cookies.get(settings.CSRF_COOKIE_NAME)
    return cookie.value if cookie is not None else ""


def _browser(user) -> Client:
    client = Client()
    assert page_login(client, user.email).status_code == 302
    return client


def _add_on_page(client: Client, name: str = "Phone", alg: str = "ES256"):
    token = _csrf(client)
    options = client.post(f"{PASSKEYS}/register/options", HTTP_X_CSRFTOKEN=token)
    assert options.status_code == 200, options.content
    authenticator = SoftAuthenticator(alg)
    credential = authenticator.create(options.json())
    return authenticator, client.post("/account/two-factor/passkeys/add",
                                      {"name": name, "credential": json.dumps(credential)})


def test_add_rename_and_remove_a_passkey_on_the_account_page(db):
    user = UserFactory()
    client = _browser(user)
    page = client.get("/account/two-factor").content.decode()
    assert "Add a passkey" in page and "You have no passkeys yet." in page and executable_inline_scripts(page) == []
    _, response = _add_on_page(client, "Phone")
    assert response.status_code == 200 and "Passkey \u201cPhone\u201d added" in response.content.decode()
    passkey = Passkey.objects.get(user=user)
    assert "Never used" in response.content.decode()
    renamed = client.post(f"/account/two-factor/passkeys/{passkey.pk}/rename", {"name": "Work phone"})
    assert renamed.status_code == 302
    assert "Work phone" in client.get("/account/two-factor").content.decode()
    other = register(UserFactory())[1]
    assert client.post(f"/account/two-factor/passkeys/{other['id']}/remove").status_code == 404
    assert client.post(f"/account/two-factor/passkeys/{other['id']}/rename", {"name": "x"}).status_code == 404
    removed = client.post(f"/account/two-factor/passkeys/{passkey.pk}/remove")
    assert removed.status_code == 200 and "Passkey removed." in removed.content.decode()
    assert not Passkey.objects.filter(user=user).exists()
    activity = client.get("/account/security").content.decode()
    assert all(label in activity for label in ("Passkey added", "Passkey renamed", "Passkey removed"))


def test_adding_a_passkey_on_the_page_needs_a_fresh_session(db):
    user = UserFactory()
    client = _browser(user)
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=1))
    token = _csrf(client)
    refused = client.post(f"{PASSKEYS}/register/options", HTTP_X_CSRFTOKEN=token)
    assert refused.status_code == 403  # passkeys.js sends the browser to /account/reauthenticate
    response = client.post("/account/two-factor/passkeys/add", {"credential": "{}"})
    assert response.status_code == 302 and response["Location"].startswith("/account/reauthenticate")


def test_a_bad_answer_on_the_account_page_adds_nothing(db):
    user = UserFactory()
    client = _browser(user)
    token = _csrf(client)
    options = client.post(f"{PASSKEYS}/register/options", HTTP_X_CSRFTOKEN=token).json()
    credential = SoftAuthenticator().create(options, uv=False)
    response = client.post("/account/two-factor/passkeys/add", {"credential": json.dumps(credential)})
    assert response.status_code == 400 and "was not created" in response.content.decode()
    assert client.post("/account/two-factor/passkeys/add", {"credential": "nope"}).status_code == 400
    assert not Passkey.objects.exists()


def test_the_second_step_page_offers_the_users_passkeys_and_takes_one(db):
    user = UserFactory()
    authenticator, _ = register(user)
    client = Client()
    response = page_login(client, user.email)
    assert response.status_code == 302 and response["Location"].startswith("/login/two-factor")
    html = client.get("/login/two-factor").content.decode()
    assert "Use a passkey" in html and "Enter your code" not in html and executable_inline_scripts(html) == []
    data = json.loads(re.search(r'<script id="passkey-options" type="application/json">(.*?)</script>',
                                html, re.S).group(1))
    assert [c["id"] for c in data["options"]["allowCredentials"]] == [authenticator.id]
    credential = authenticator.get(data["options"])
    done = client.post("/login/two-factor", {"ceremony_id": data["ceremonyId"], "credential": json.dumps(credential)})
    assert done.status_code == 302, done.content.decode()[:500]
    assert DeviceSession.objects.filter(user=user, amr=["pwd", "hwk", "user", "mfa"]).count() == 1


def test_a_wrong_passkey_on_the_second_step_page_is_refused(db):
    user = UserFactory()
    register(user)
    thief, _ = register(UserFactory())
    client = Client()
    page_login(client, user.email)
    html = client.get("/login/two-factor").content.decode()
    data = json.loads(re.search(r'<script id="passkey-options" type="application/json">(.*?)</script>',
                                html, re.S).group(1))
    response = client.post("/login/two-factor", {"ceremony_id": data["ceremonyId"],
                                                 "credential": json.dumps(thief.get(data["options"]))})
    assert response.status_code == 200 and "could not be used" in response.content.decode()
    assert not DeviceSession.objects.filter(user=user, amr=["pwd", "hwk", "user", "mfa"]).exists()


def test_the_reauthenticate_page_takes_a_passkey(db):
    user = UserFactory()
    authenticator, _ = register(user)
    client = Client()
    assert passkey_page_sign_in(client, authenticator).status_code == 302
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=1))
    html = client.get("/account/reauthenticate?next=/account/two-factor").content.decode()
    assert "Use a passkey instead" in html and executable_inline_scripts(html) == []
    data = json.loads(re.search(r'<script id="passkey-options" type="application/json">(.*?)</script>',
                                html, re.S).group(1))
    wrong = client.post("/account/reauthenticate", {"next": "/account/two-factor", "ceremony_id": data["ceremonyId"],
                                                    "credential": json.dumps(authenticator.get(data["options"],
                                                                                               uv=False))})
    assert wrong.status_code == 200 and "could not be used" in wrong.content.decode()
    html = client.get("/account/reauthenticate?next=/account/two-factor").content.decode()
    data = json.loads(re.search(r'<script id="passkey-options" type="application/json">(.*?)</script>',
                                html, re.S).group(1))
    done = client.post("/account/reauthenticate", {"next": "/account/two-factor", "ceremony_id": data["ceremonyId"],
                                                   "credential": json.dumps(authenticator.get(data["options"]))})
    assert done.status_code == 302 and done["Location"] == "/account/two-factor"
    row = DeviceSession.objects.get(user=user, revoked_at__isnull=True, amr=["hwk", "user", "mfa"])
    assert row.reauthenticated_at > timezone.now() - timedelta(minutes=1)
