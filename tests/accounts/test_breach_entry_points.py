"""Every entry point that sets a password runs the breached-password check (it is part of the one
password policy, AUTH_PASSWORD_VALIDATORS): the API (register, register-b2b, reset, change), the pages
(register, reset, account), the admin (add user, change password), ``createsuperuser`` in both
modes, ``changepassword`` and the user manager. The source is a local file (``breached_file``) that
knows BREACHED; CLEAN is accepted everywhere, so the check refuses only what it should."""

from __future__ import annotations

import builtins
import getpass
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import User
from audit.models import AuditEvent, EventType
from tests.accounts.breach_helpers import (  # noqa: F401  (fixtures)
    BREACHED,
    CLEAN,
    breach_settings,
    breached_file,
    range_server,
    sha1,
)
from tests.conftest import last_mail_to, link_token, login
from tests.factories import PASSWORD, UserFactory
from tests.web.conftest import CHROME, page_login

EMAIL = "simone.weil@example.com"
MESSAGE = "This password has appeared in a data breach"
CASES = [pytest.param(BREACHED, False, id="breached-refused"), pytest.param(CLEAN, True, id="clean-accepted")]

pytestmark = pytest.mark.usefixtures("breached_file")


def _assert_breach_error(response, field):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"  # like every other password-policy failure (docs/api.md)
    assert any(MESSAGE in m for m in error["fields"][field]), error


# --- API -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pw, ok", CASES)
def test_api_register(api, pw, ok):
    r = api.post("/api/v1/auth/register", {"email": EMAIL, "password": pw, "name": "S"}, format="json")
    if ok:
        assert r.status_code == 202 and User.objects.get(email=EMAIL).check_password(pw)
    else:
        _assert_breach_error(r, "password")
        assert not User.objects.exists()


@pytest.mark.parametrize("pw, ok", CASES)
def test_api_register_b2b(api, pw, ok):
    r = api.post("/api/v1/auth/register-b2b", {"email": EMAIL, "password": pw, "name": "S",
                                               "organizationName": "Acme"}, format="json")
    if ok:
        assert r.status_code == 202 and User.objects.get(email=EMAIL).check_password(pw)
    else:
        _assert_breach_error(r, "password")
        assert not User.objects.exists()


@pytest.mark.parametrize("pw, ok", CASES)
def test_api_reset_password(api, pw, ok):
    user = UserFactory(email=EMAIL)
    api.post("/api/v1/auth/forgot-password", {"email": EMAIL}, format="json")
    token = link_token(last_mail_to(EMAIL))
    r = api.post("/api/v1/auth/reset-password", {"token": token, "password": pw}, format="json")
    user.refresh_from_db()
    if ok:
        assert r.status_code == 204 and user.check_password(pw)
    else:
        _assert_breach_error(r, "password")
        assert user.check_password(PASSWORD)
        assert AuditEvent.objects.filter(event=EventType.PASSWORD_RESET_FAILED).exists()
        # the refused password did not spend the link
        assert api.post("/api/v1/auth/reset-password", {"token": token, "password": CLEAN},
                        format="json").status_code == 204


@pytest.mark.parametrize("pw, ok", CASES)
def test_api_change_password(api, pw, ok):
    user = UserFactory(email=EMAIL)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {login(api, EMAIL)['accessToken']}")
    r = api.post("/api/v1/auth/change-password", {"currentPassword": PASSWORD, "newPassword": pw}, format="json")
    user.refresh_from_db()
    if ok:
        assert r.status_code == 204 and user.check_password(pw)
    else:
        _assert_breach_error(r, "newPassword")
        assert user.check_password(PASSWORD)
        row = AuditEvent.objects.get(event=EventType.PASSWORD_CHANGE_FAILED)
        assert row.context["reason"] == "password_policy"


def test_api_register_through_the_range_api(api, breach_settings, range_server):
    """End to end with the k-anonymity source alone."""
    range_server.counts = {CLEAN: 3}
    breach_settings(file="", range_url=range_server.url)
    _assert_breach_error(api.post("/api/v1/auth/register", {"email": EMAIL, "password": CLEAN}, format="json"),
                         "password")
    assert not User.objects.exists()
    assert [r["path"] for r in range_server.requests] == [f"/range/{sha1(CLEAN)[:5]}"]


@pytest.mark.parametrize("on_error, status", [("allow", 202), ("deny", 400)])
def test_api_register_when_the_source_fails(api, breach_settings, tmp_path, on_error, status):
    breach_settings(file=str(tmp_path / "gone.txt"), on_error=on_error)
    r = api.post("/api/v1/auth/register", {"email": EMAIL, "password": CLEAN}, format="json")
    assert r.status_code == status, r.content
    if status == 400:
        assert r.json()["error"]["code"] == "validation_error"
        assert "could not check this password" in r.json()["error"]["fields"]["password"][0]
        assert not User.objects.exists()


# --- pages -------------------------------------------------------------------------------------------------------

@pytest.fixture
def web():
    return Client(HTTP_USER_AGENT=CHROME)


@pytest.mark.parametrize("pw, ok", CASES)
def test_page_register(web, pw, ok):
    page = web.post("/register", {"email": EMAIL, "password": pw, "name": "S"}).content.decode()
    if ok:
        assert "Check your inbox" in page and User.objects.filter(email=EMAIL).exists()
    else:
        assert MESSAGE in page and 'id="id_password-error"' in page
        assert not User.objects.exists()


@pytest.mark.parametrize("pw, ok", CASES)
def test_page_reset_password(web, pw, ok):
    user = UserFactory(email=EMAIL)
    web.post("/forgot-password", {"email": EMAIL})
    token = link_token(last_mail_to(EMAIL))
    page = web.post("/reset-password", {"token": token, "password": pw}).content.decode()
    user.refresh_from_db()
    if ok:
        assert "Password changed" in page and user.check_password(pw)
    else:
        assert MESSAGE in page and 'id="id_password-error"' in page
        assert user.check_password(PASSWORD)


@pytest.mark.parametrize("pw, ok", CASES)
def test_page_account_password(web, pw, ok):
    user = UserFactory(email=EMAIL)
    assert page_login(web, EMAIL).status_code == 302
    page = web.post("/account/password", {"current_password": PASSWORD, "new_password": pw}).content.decode()
    user.refresh_from_db()
    if ok:
        assert "Your password is changed" in page and user.check_password(pw)
    else:
        assert MESSAGE in page and 'id="id_new_password-error"' in page
        assert user.check_password(PASSWORD)


# --- admin ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def admin_client():
    superuser = UserFactory(email="root@example.com", is_staff=True, is_superuser=True, role="admin")
    client = Client()
    client.force_login(superuser)
    return client


@pytest.mark.parametrize("pw, ok", CASES)
def test_admin_add_user(admin_client, pw, ok):
    r = admin_client.post("/admin/accounts/user/add/", {"email": EMAIL, "name": "S", "role": "user",
                                                        "password1": pw, "password2": pw})
    if ok:
        assert r.status_code == 302 and User.objects.get(email=EMAIL).check_password(pw)
    else:
        assert r.status_code == 200
        errors = r.context["adminform"].form.errors.get("password2")
        assert errors and any(MESSAGE in e for e in errors)
        assert not User.objects.filter(email=EMAIL).exists()


@pytest.mark.parametrize("pw, ok", CASES)
def test_admin_change_password(admin_client, pw, ok):
    user = UserFactory(email=EMAIL)
    r = admin_client.post(f"/admin/accounts/user/{user.pk}/password/",
                          {"password1": pw, "password2": pw, "usable_password": "true"})
    user.refresh_from_db()
    if ok:
        assert r.status_code == 302 and user.check_password(pw)
    else:
        assert r.status_code == 200
        errors = r.context["form"].errors.get("password2")
        assert errors and any(MESSAGE in e for e in errors)
        assert user.check_password(PASSWORD)


# --- commands and the manager ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("pw, ok", CASES)
def test_createsuperuser_noinput(monkeypatch, pw, ok):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", pw)
    args = ["createsuperuser", "--noinput", "--email", EMAIL, "--name", "S"]
    if ok:
        call_command(*args, verbosity=0)
        assert User.objects.get(email=EMAIL).check_password(pw)
    else:
        with pytest.raises(CommandError, match="data breach"):
            call_command(*args, verbosity=0)
        assert not User.objects.exists()


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("pw, ok", CASES)
def test_createsuperuser_interactive_even_with_bypass(monkeypatch, pw, ok):
    monkeypatch.setattr(getpass, "getpass", lambda prompt="Password: ": pw)
    monkeypatch.setattr(builtins, "input", lambda prompt="": "y")  # "Bypass password validation?" yes
    kwargs = {"interactive": True, "stdin": _Tty(), "email": EMAIL, "name": "S", "verbosity": 0, "stderr": io.StringIO()}
    if ok:
        call_command("createsuperuser", **kwargs)
        assert User.objects.get(email=EMAIL).check_password(pw)
    else:
        with pytest.raises(CommandError, match="data breach"):
            call_command("createsuperuser", **kwargs)
        assert not User.objects.exists()


@pytest.mark.parametrize("pw, ok", CASES)
def test_changepassword_command(monkeypatch, pw, ok):
    user = UserFactory(email=EMAIL)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="Password: ": pw)
    stderr = io.StringIO()
    if ok:
        call_command("changepassword", EMAIL, stdout=io.StringIO(), stderr=stderr)
        user.refresh_from_db()
        assert user.check_password(pw)
    else:
        with pytest.raises(CommandError, match="Aborting password change"):
            call_command("changepassword", EMAIL, stdout=io.StringIO(), stderr=stderr)
        assert MESSAGE in stderr.getvalue()
        user.refresh_from_db()
        assert user.check_password(PASSWORD)


@pytest.mark.parametrize("pw, ok", CASES)
def test_user_manager(pw, ok):
    if ok:
        assert User.objects.create_user(EMAIL, pw, name="S").check_password(pw)
    else:
        with pytest.raises(ValidationError) as exc:
            User.objects.create_user(EMAIL, pw, name="S")
        assert "password_breached" in [e.code for e in exc.value.error_list]
        assert not User.objects.exists()
