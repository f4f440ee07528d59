"""Issue 14: a security-state change ends every pending link token of the user (except the one being
spent and the exempt purposes), whichever path made it: a password reset or change, "this wasn't me",
"sign out everywhere else", staff or a script setting a password, deactivation. Also: those paths
outside the flows end every session, audited once; the flows are not revoked or audited twice.
(Known devices: tests/security/test_known_devices.py.)"""

import getpass
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from accounts import services
from accounts.app_settings import app_settings as account_settings
from accounts.models import SECURITY_STATE_EXEMPT_PURPOSES, AccountToken, TokenPurpose, User
from audit.models import AuditEvent, EventType
from security.app_settings import app_settings as security_settings
from security.models import SecurityToken, SecurityTokenPurpose
from security.services import security_token_issue
from sessions_app.models import DeviceSession, RevokeReason
from tests.conftest import last_mail_to, link_token, login
from tests.factories import PASSWORD, UserFactory

NEW_PASSWORD = "A-Brand-New-Passphrase-42"
NEW_EMAIL = "attacker-owned@example.org"
WRONG = "Wrong-Password-123456"

# How each kind of link is used, and what a dead one answers: 400 invalid_token (as a used link).
USE = {
    "verify": ("/api/v1/auth/verify-email", {}),
    "reset": ("/api/v1/auth/reset-password", {"password": "Yet-Another-Passphrase-77"}),
    "change_email": ("/api/v1/auth/confirm-email-change", {}),
    "unlock": ("/api/v1/auth/unlock", {}),
    "not_me": ("/api/v1/auth/not-me", {}),
}


def use_link(kind: str, raw: str):
    path, extra = USE[kind]
    return APIClient().post(path, {"token": raw, **extra}, format="json")


def issue_links(user) -> dict[str, str]:
    """One pending link of every kind, issued the way the flows issue them (only hashes are stored)."""
    return {
        "verify": services.account_token_issue(user, TokenPurpose.VERIFY_EMAIL, account_settings.EMAIL_VERIFICATION_TTL),
        "reset": services.account_token_issue(user, TokenPurpose.RESET_PASSWORD, account_settings.PASSWORD_RESET_TTL),
        "change_email": services.account_token_issue(user, TokenPurpose.CHANGE_EMAIL, account_settings.EMAIL_CHANGE_TTL,
                                              new_email=NEW_EMAIL),
        "unlock": security_token_issue(user=user, purpose=SecurityTokenPurpose.UNLOCK,
                                       ttl=security_settings.UNLOCK_TTL),
        "not_me": security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME,
                                       ttl=security_settings.NOT_ME_TTL),
    }


def bearer(access_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token}")
    return client


def admin_client():
    staff = UserFactory(is_staff=True, is_superuser=True, role="admin")
    client = Client()
    client.force_login(staff)
    return client


def admin_change_form(user, **changes):
    """The admin's user change form as the browser posts it (a checkbox left out is False)."""
    data = {"email": user.email, "name": user.name, "role": user.role,
            "email_verified_at_0": user.email_verified_at.strftime("%Y-%m-%d"),
            "email_verified_at_1": user.email_verified_at.strftime("%H:%M:%S"), "is_active": "on"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


# --- the security-state changes -----------------------------------------------------------------------
# Each takes (user, links, me: the owner's API client with a fresh session) and returns the kind of
# link it spent, if any. Deactivations re-activate the account afterwards (by a queryset update, no
# signal), so what stops the links is the version, not the disabled account.

def via_password_reset(user, links, me):
    response = APIClient().post("/api/v1/auth/reset-password", {"token": links["reset"], "password": NEW_PASSWORD},
                                format="json")
    assert response.status_code == 204, response.content
    return "reset"


def via_password_change(user, links, me):
    response = me.post("/api/v1/auth/change-password", {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
                       format="json")
    assert response.status_code == 204, response.content


def via_not_me(user, links, me):
    spent = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME, ttl=security_settings.NOT_ME_TTL)
    assert use_link("not_me", spent).status_code == 204


def via_sign_out_everywhere_else(user, links, me):
    assert me.post("/api/v1/auth/sessions/revoke-others").status_code == 204


def via_the_sessions_page(user, links, me):
    from tests.web.conftest import CHROME, page_login

    browser = Client(HTTP_USER_AGENT=CHROME)
    assert page_login(browser, user.email).status_code == 302
    response = browser.post("/account/sessions/revoke-others")
    assert response.status_code == 302 and response["Location"] == "/account/sessions?done=others"


def via_admin_password_form(user, links, me):
    response = admin_client().post(f"/admin/accounts/user/{user.pk}/password/",
                                   {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"})
    assert response.status_code == 302


def via_admin_disabling_the_password(user, links, me):
    response = admin_client().post(f"/admin/accounts/user/{user.pk}/password/",
                                   {"usable_password": "false", "unset-password": "1"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert not user.has_usable_password()


def via_set_password_in_a_shell(user, links, me):
    someone = User.objects.get(pk=user.pk)
    someone.set_password(NEW_PASSWORD)
    someone.save()


def via_set_unusable_password_in_a_shell(user, links, me):
    someone = User.objects.get(pk=user.pk)
    someone.set_unusable_password()
    someone.save(update_fields=["password"])


def via_changepassword_command(user, links, me):
    call_command("changepassword", user.email, stdout=io.StringIO())  # getpass answers NEW_PASSWORD


def via_admin_deactivation(user, links, me):
    response = admin_client().post(f"/admin/accounts/user/{user.pk}/change/", admin_change_form(user, is_active=None))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not User.objects.get(pk=user.pk).is_active
    User.objects.filter(pk=user.pk).update(is_active=True)


def via_deactivation_in_a_shell(user, links, me):
    someone = User.objects.get(pk=user.pk)
    someone.is_active = False
    someone.save()
    User.objects.filter(pk=user.pk).update(is_active=True)


CHANGES = [via_password_reset, via_password_change, via_not_me, via_sign_out_everywhere_else,
           via_the_sessions_page, via_admin_password_form, via_admin_disabling_the_password, via_set_password_in_a_shell,
           via_set_unusable_password_in_a_shell, via_changepassword_command, via_admin_deactivation,
           via_deactivation_in_a_shell]


@pytest.fixture
def me(user):
    return bearer(login(APIClient(), user.email)["accessToken"])


@pytest.fixture(autouse=True)
def _new_password_at_the_prompt(monkeypatch):
    monkeypatch.setattr(getpass, "getpass", lambda prompt="Password: ", stream=None: NEW_PASSWORD)


@pytest.mark.parametrize("change", CHANGES, ids=lambda f: f.__name__)
def test_every_security_state_change_ends_every_pending_link_but_the_one_it_spends(change, user, me):
    links = issue_links(user)
    before = User.objects.get(pk=user.pk).security_version
    spent = change(user, links, me)
    assert User.objects.get(pk=user.pk).security_version == before + 1
    for kind, raw in links.items():
        if kind == spent:
            continue
        response = use_link(kind, raw)
        assert response.status_code == 400, (kind, response.content)
        assert response.json()["error"]["code"] == "invalid_token"
    user.refresh_from_db()
    assert user.email != NEW_EMAIL  # the pending email change never applied


def test_a_link_issued_after_the_change_works(user, me):
    via_password_change(user, issue_links(user), me)
    user.refresh_from_db()
    fresh = issue_links(user)
    assert use_link("change_email", fresh["change_email"]).status_code == 200
    assert use_link("unlock", fresh["unlock"]).status_code == 200


# --- the issue's attack, end to end ----------------------------------------------------------------------
def test_a_pending_email_change_dies_with_the_owners_password_reset(user):
    attacker = bearer(login(APIClient(), user.email)["accessToken"])  # once held a fresh session
    assert attacker.post("/api/v1/auth/change-email", {"newEmail": NEW_EMAIL, "password": PASSWORD}, format="json").status_code == 202
    confirmation = link_token(last_mail_to(NEW_EMAIL))

    assert APIClient().post("/api/v1/auth/forgot-password", {"email": user.email}, format="json").status_code == 202
    reset = link_token(last_mail_to(user.email))
    owner = APIClient().post("/api/v1/auth/reset-password", {"token": reset, "password": NEW_PASSWORD}, format="json")
    assert owner.status_code == 204

    response = use_link("change_email", confirmation)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_token"
    assert User.objects.get(pk=user.pk).email == user.email
    row = AuditEvent.objects.filter(event=EventType.EMAIL_CHANGE_FAILED).latest("id")
    assert (row.subject_id, row.context["reason"]) == (user.pk, "superseded")


def test_a_superseded_link_is_audited_as_superseded(user, me):
    links = issue_links(user)
    via_sign_out_everywhere_else(user, links, me)
    assert use_link("verify", links["verify"]).status_code == 400
    row = AuditEvent.objects.filter(event=EventType.EMAIL_VERIFICATION_FAILED).latest("id")
    assert row.context["reason"] == "superseded"
    assert use_link("reset", links["reset"]).status_code == 400
    row = AuditEvent.objects.filter(event=EventType.PASSWORD_RESET_FAILED).latest("id")
    assert row.context["reason"] == "superseded"


# --- exempt purposes ----------------------------------------------------------------------------------------
def test_an_exempt_purpose_is_issued_without_the_version_and_outlives_changes(user, me):
    assert "email_change_revert" in SECURITY_STATE_EXEMPT_PURPOSES
    raw = services.account_token_issue(user, "email_change_revert", timedelta(days=7))
    assert AccountToken.objects.get(purpose="email_change_revert").security_version is None
    via_password_change(user, {}, me)  # what an attacker holding the new address would do
    via_sign_out_everywhere_else(user, {}, bearer(login(APIClient(), user.email, NEW_PASSWORD)["accessToken"]))
    assert services.account_token_consume(raw, "email_change_revert").user_id == user.pk
    ordinary = AccountToken.objects.exclude(purpose="email_change_revert")
    assert not ordinary.filter(security_version__isnull=True).exists()
    assert not SecurityToken.objects.filter(security_version__isnull=True).exists()


# --- outside the flows: sessions end too, audited once -----------------------------------------------------
@pytest.mark.parametrize("change, event", [
    (via_admin_password_form, EventType.PASSWORD_SET),
    (via_set_password_in_a_shell, EventType.PASSWORD_SET),
    (via_changepassword_command, EventType.PASSWORD_SET),
    (via_admin_deactivation, EventType.ACCOUNT_DEACTIVATED),
    (via_deactivation_in_a_shell, EventType.ACCOUNT_DEACTIVATED),
], ids=lambda v: getattr(v, "__name__", ""))
def test_outside_the_flows_every_session_ends_and_it_is_audited_once(change, event, user, me):
    other = login(APIClient(), user.email)
    change(user, {}, me)
    assert not DeviceSession.objects.alive().filter(user=user).exists()
    assert set(DeviceSession.objects.filter(user=user).values_list("revoked_reason", flat=True)) == {RevokeReason.ADMIN}
    assert me.get("/api/v1/auth/me").status_code == 401
    refreshed = APIClient().post("/api/v1/auth/refresh", {"refreshToken": other["refreshToken"]}, format="json")
    assert refreshed.status_code == 401
    rows = AuditEvent.objects.filter(event=event, subject_id=user.pk)
    assert rows.count() == 1 and rows.get().context["sessions_revoked"] == 2 and rows.get().success
    assert AuditEvent.objects.filter(event=EventType.SESSION_REVOKED, subject_id=user.pk).count() == 2


def test_staff_password_set_is_also_named_by_the_admins_own_row(user, me):
    via_admin_password_form(user, {}, me)
    row = AuditEvent.objects.get(event=EventType.ADMIN_ACTION, subject_id=user.pk)
    assert row.actor_id != user.pk and "password" in row.context["change"].lower()
    assert AuditEvent.objects.get(event=EventType.PASSWORD_SET).context["usable"] is True


def test_the_flows_end_and_audit_their_change_once(user, me):
    other = login(APIClient(), user.email)
    via_password_change(user, {}, me)
    assert AuditEvent.objects.filter(event=EventType.PASSWORD_CHANGED).count() == 1
    assert not AuditEvent.objects.filter(event__in=[EventType.PASSWORD_SET, EventType.ACCOUNT_DEACTIVATED]).exists()
    revoked = DeviceSession.objects.filter(user=user, revoked_at__isnull=False)
    assert [(str(pk), reason) for pk, reason in revoked.values_list("pk", "revoked_reason")] == [
        (other["session"]["id"], RevokeReason.PASSWORD_CHANGED)]
    assert AuditEvent.objects.filter(event=EventType.SESSION_REVOKED).count() == 1
    assert me.get("/api/v1/auth/me").status_code == 200  # the session that changed it stays


def test_saves_that_change_nothing_of_the_security_state_end_nothing(user, me):
    links = issue_links(user)
    someone = User.objects.get(pk=user.pk)
    someone.name = "Renamed"
    someone.save()  # a full save, the password hash unchanged (the admin's change form does this)
    someone.save(update_fields=["name"])
    reactivated = User.objects.get(pk=user.pk)
    reactivated.is_active = True
    reactivated.save(update_fields=["is_active"])
    assert User.objects.get(pk=user.pk).security_version == 0
    assert me.get("/api/v1/auth/me").status_code == 200
    assert use_link("unlock", links["unlock"]).status_code == 200


def test_a_hash_upgrade_at_login_is_no_password_change(user, settings):
    from django.contrib.auth.hashers import make_password

    tokens = login(APIClient(), user.email)
    links = issue_links(user)
    # A hash of an older hasher: the next correct password check re-hashes and saves it.
    settings.PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher",
                                 "django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.filter(pk=user.pk).update(password=make_password(PASSWORD, hasher="md5"))
    someone = User.objects.get(pk=user.pk)
    assert someone.check_password(PASSWORD)
    assert User.objects.get(pk=user.pk).password.startswith("argon2$")
    assert User.objects.get(pk=user.pk).security_version == 0
    assert DeviceSession.objects.get(pk=tokens["session"]["id"]).revoked_at is None
    assert use_link("verify", links["verify"]).status_code == 200


def test_a_stale_copy_saved_back_does_not_revive_old_links(user, me):
    stale = User.objects.get(pk=user.pk)
    links = issue_links(user)
    via_sign_out_everywhere_else(user, links, me)
    stale.name = "Edited meanwhile"
    stale.save()  # every column but the version
    assert User.objects.get(pk=user.pk).security_version == 1
    assert stale.security_version == 1  # read again from the row on use
    assert use_link("unlock", links["unlock"]).status_code == 400


def test_a_change_between_reading_a_link_and_spending_it_wins(user, monkeypatch):
    """The conditional UPDATE that spends a link also checks the version: a change committed after the
    link was read, before it was spent, still ends it."""
    raw = issue_links(user)["verify"]
    real_filter = AccountToken.objects.filter

    def filter_then_change(*args, **kwargs):
        result = real_filter(*args, **kwargs)
        if "used_at__isnull" in kwargs and "pk" in kwargs:  # the spend: a change lands just before it
            User.objects.filter(pk=user.pk).update(security_version=5)
        return result

    monkeypatch.setattr(AccountToken.objects, "filter", filter_then_change)
    response = use_link("verify", raw)
    assert response.status_code == 400
    assert AccountToken.objects.get(purpose=TokenPurpose.VERIFY_EMAIL).used_at is None


# --- the unlock mail after a change --------------------------------------------------------------------------
def test_a_lockout_after_a_change_mails_a_working_unlock_link(user, me):
    from django.core import mail

    for _ in range(5):
        APIClient().post("/api/v1/auth/login", {"email": user.email, "password": WRONG}, format="json",
                         REMOTE_ADDR="203.0.113.7")
    first = link_token(last_mail_to(user.email))
    via_sign_out_everywhere_else(user, {}, me)  # ends the unlock link above
    mail.outbox.clear()
    for _ in range(5):
        APIClient().post("/api/v1/auth/login", {"email": user.email, "password": WRONG}, format="json",
                         REMOTE_ADDR="198.51.100.9")
    second = link_token(last_mail_to(user.email))  # not held back by the dead one of this lockout period
    assert use_link("unlock", first).status_code == 400
    assert APIClient().post("/api/v1/auth/unlock", {"token": second}, format="json",
                            REMOTE_ADDR="198.51.100.9").status_code == 200


def test_tokens_already_mailed_before_the_upgrade_carry_version_zero():
    """The migrations give every existing link version 0 (every user starts there): none is exempt."""
    import importlib

    migration = importlib.import_module("accounts.migrations.0004_user_security_version")
    user = UserFactory()
    raw = services.account_token_issue(user, TokenPurpose.VERIFY_EMAIL, timedelta(hours=1))
    AccountToken.objects.update(security_version=None)

    from django.apps import apps

    migration.tokens_carry_version_zero(apps, None)
    assert AccountToken.objects.get().security_version == 0
    services.security_version_bump(user=user)
    assert use_link("verify", raw).status_code == 400


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_requests_spend_an_unlock_link_once(user, monkeypatch):
    """The spending UPDATE carries the version check without a join, so PostgreSQL still re-checks
    ``used_at`` on the row each waiting request gets: one winner (accounts' links: tests/accounts/test_tokens.py)."""
    import threading

    from django.db import connections, transaction
    from django.db.models import QuerySet

    from security.services import InvalidSecurityLink, security_token_consume

    raw = issue_links(user)["unlock"]
    parties, barrier, local = 4, threading.Barrier(4, timeout=10), threading.local()
    real_update = QuerySet.update

    def update_after_everyone_has_read(self, **kwargs):
        if self.model is SecurityToken and not getattr(local, "waited", False):
            local.waited = True
            barrier.wait()
        return real_update(self, **kwargs)

    monkeypatch.setattr(QuerySet, "update", update_after_everyone_has_read)
    results = []

    def run():
        try:
            with transaction.atomic():
                results.append(security_token_consume(raw=raw, purpose=SecurityTokenPurpose.UNLOCK).user_id)
        except InvalidSecurityLink as exc:
            results.append(exc.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(parties)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(map(str, results)) == sorted([str(user.pk)] + ["invalid_token"] * 3)


def test_an_exempt_link_outlives_a_later_email_change(user, me):
    raw = services.account_token_issue(user, "email_change_revert", timedelta(days=7))
    assert me.post("/api/v1/auth/change-email", {"newEmail": NEW_EMAIL, "password": PASSWORD}, format="json").status_code == 202
    assert use_link("change_email", link_token(last_mail_to(NEW_EMAIL))).status_code == 200
    assert services.account_token_consume(raw, "email_change_revert").user_id == user.pk
