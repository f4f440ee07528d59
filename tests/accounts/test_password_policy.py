"""One password policy (12 to 128 characters, common-password and similarity validators) at every
entry point: the API (register, reset, change), the Django admin (add user, change password) and
``manage.py createsuperuser`` in both modes."""

import builtins
import getpass

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import User
from tests.factories import PASSWORD, UserFactory
from tests.support.auth import login
from tests.support.errors import error_of
from tests.support.mail import last_mail_to, link_token

EMAIL = "marguerite.duras@example.com"


def _long(n: int) -> str:
    """A non-dictionary password of exactly n characters."""
    base = "Qz7-vLp2!wK9#mR4"
    return (base * (n // len(base) + 1))[:n]


CASES = [
    pytest.param(_long(11), False, id="11-chars-refused"),
    pytest.param(_long(12), True, id="12-chars-accepted"),
    pytest.param(_long(128), True, id="128-chars-accepted"),
    pytest.param(_long(129), False, id="129-chars-refused"),
    pytest.param("password1234", False, id="common-refused"),
    pytest.param("Marguerite.Duras@example", False, id="similar-to-email-refused"),
]


def test_cases_have_the_lengths_they_claim():
    assert [len(_long(n)) for n in (11, 12, 128, 129)] == [11, 12, 128, 129]
    assert len("password1234") == 12 and len("Marguerite.Duras@example") >= 12  # refused for content, not length


# --- API ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pw, ok", CASES)
def test_api_register(api, db, pw, ok):
    r = api.post("/api/v1/auth/register", {"email": EMAIL, "password": pw, "name": "M"}, format="json")
    if ok:
        assert r.status_code == 202
        assert User.objects.get(email=EMAIL).check_password(pw)
    else:
        error_of(r, 400, "validation_error", fields=["password"])
        assert not User.objects.exists()


@pytest.mark.parametrize("pw, ok", CASES)
def test_api_reset_password(api, db, pw, ok):
    user = UserFactory(email=EMAIL)
    api.post("/api/v1/auth/forgot-password", {"email": EMAIL}, format="json")
    token = link_token(last_mail_to(EMAIL))
    r = api.post("/api/v1/auth/reset-password", {"token": token, "password": pw}, format="json")
    user.refresh_from_db()
    if ok:
        assert r.status_code == 204
        assert user.check_password(pw)
    else:
        error_of(r, 400, "validation_error", fields=["password"])
        assert user.check_password(PASSWORD)
        # a refused password does not spend the link
        good = api.post("/api/v1/auth/reset-password", {"token": token, "password": _long(20)}, format="json")
        assert good.status_code == 204


@pytest.mark.parametrize("pw, ok", CASES)
def test_api_change_password(api, db, pw, ok):
    user = UserFactory(email=EMAIL)
    pair = login(api, EMAIL)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['accessToken']}")
    r = api.post("/api/v1/auth/change-password", {"currentPassword": PASSWORD, "newPassword": pw}, format="json")
    user.refresh_from_db()
    if ok:
        assert r.status_code == 204
        assert user.check_password(pw)
    else:
        error_of(r, 400, "validation_error", fields=["newPassword"])
        assert user.check_password(PASSWORD)


# --- Django admin --------------------------------------------------------------------------------------

@pytest.fixture
def admin_client(db):
    superuser = UserFactory(email="root@example.com", is_staff=True, is_superuser=True, role="admin")
    client = Client()
    client.force_login(superuser)
    return client


@pytest.mark.parametrize("pw, ok", CASES)
def test_admin_add_user(admin_client, pw, ok):
    r = admin_client.post("/admin/accounts/user/add/", {
        "email": "Marguerite.Duras@Example.com", "name": "M", "role": "user", "password1": pw, "password2": pw,
    })
    if ok:
        assert r.status_code == 302, r.content.decode()[:2000]
        created = User.objects.get(email=EMAIL)  # normalized like every other entry point
        assert created.check_password(pw)
    else:
        assert r.status_code == 200
        assert r.context["adminform"].form.errors.get("password2"), r.context["adminform"].form.errors
        assert not User.objects.filter(email=EMAIL).exists()


@pytest.mark.parametrize("pw, ok", CASES)
def test_admin_change_password(admin_client, pw, ok):
    user = UserFactory(email=EMAIL)
    r = admin_client.post(f"/admin/accounts/user/{user.pk}/password/",
                          {"password1": pw, "password2": pw, "usable_password": "true"})
    user.refresh_from_db()
    if ok:
        assert r.status_code == 302
        assert user.check_password(pw)
    else:
        assert r.status_code == 200
        assert r.context["form"].errors.get("password2"), r.context["form"].errors
        assert user.check_password(PASSWORD)


# --- manage.py createsuperuser --------------------------------------------------------------------------

@pytest.mark.parametrize("pw, ok", CASES)
def test_createsuperuser_noinput(db, monkeypatch, pw, ok):
    """Django's own command skips the validators with --noinput; ours must not."""
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", pw)
    args = ["createsuperuser", "--noinput", "--email", EMAIL, "--name", "M"]
    if ok:
        call_command(*args, verbosity=0)
        user = User.objects.get(email=EMAIL)
        assert user.is_superuser and user.check_password(pw)
    else:
        with pytest.raises(CommandError, match="(?i)password"):
            call_command(*args, verbosity=0)
        assert not User.objects.filter(email=EMAIL).exists()


class _Tty:
    def isatty(self):
        return True


@pytest.mark.parametrize("pw, ok", CASES)
def test_createsuperuser_interactive_offers_no_bypass(db, monkeypatch, pw, ok):
    """Interactive mode validates and prompts "Bypass password validation?": answering yes must
    still not create an account with a password outside the policy."""
    monkeypatch.setattr(getpass, "getpass", lambda prompt="Password: ": pw)
    monkeypatch.setattr(builtins, "input", lambda prompt="": "y")
    kwargs = {"interactive": True, "stdin": _Tty(), "email": EMAIL, "name": "M", "verbosity": 0}
    if ok:
        call_command("createsuperuser", **kwargs)
        assert User.objects.get(email=EMAIL).check_password(pw)
    else:
        with pytest.raises(CommandError, match="(?i)password"):
            call_command("createsuperuser", **kwargs)
        assert not User.objects.filter(email=EMAIL).exists()


@pytest.mark.parametrize("pw, ok", CASES)
def test_user_manager_enforces_the_policy(db, pw, ok):
    """Scripts that create accounts through the manager get the same policy."""
    from django.core.exceptions import ValidationError

    if ok:
        assert User.objects.create_user(EMAIL, pw, name="M").check_password(pw)
    else:
        with pytest.raises(ValidationError):
            User.objects.create_user(EMAIL, pw, name="M")
        assert not User.objects.exists()


def test_manager_without_password_makes_an_unusable_one(db):
    user = User.objects.create_user("nopass@example.com")
    assert not user.has_usable_password()
