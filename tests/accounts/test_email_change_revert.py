"""Issue 14: the way back from an email change. The old address gets a single-use link (at least 7 days)
that restores it, ends every session and pending link and mails a reset there (POST revert-email-change
and its service); "this wasn't me" never sends a reset to an address the account moved to since the link
went out; an address an account just left stays reserved for it while its way back is open."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import AccountToken, TokenPurpose, User
from audit.models import AuditEvent, EventType
from notifications.models import OutboxMessage
from security.models import SecurityToken, SecurityTokenPurpose
from security.services import security_token_issue
from sessions_app.models import DeviceSession, RevokeReason
from tests.conftest import last_mail_to, link_token, login
from tests.factories import PASSWORD, UserFactory

CHANGE = "/api/v1/auth/change-email"
CONFIRM = "/api/v1/auth/confirm-email-change"
REVERT = "/api/v1/auth/revert-email-change"
NOT_ME = "/api/v1/auth/not-me"
NEW = "thief@example.net"
ATTACKER_PASSWORD = "Attacker-Chosen-Pass-99"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


def bearer(access_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token}")
    return client


def post(path, body):
    return APIClient().post(path, body, format="json")


def move(client, new_email=NEW):
    """Change-email and confirm it, as whoever holds ``client``'s session and ``new_email``."""
    assert client.post(CHANGE, {"newEmail": new_email, "password": PASSWORD}, format="json").status_code == 202
    assert post(CONFIRM, {"token": link_token(last_mail_to(new_email))}).status_code == 200


def revert_link(old_email):
    message = last_mail_to(old_email)
    assert message.subject == "Your email address was changed", message.subject
    assert "/account/email/revert?token=" in message.body
    return link_token(message)


def mails_to(address):
    return [m for m in mail.outbox if address in m.to]


def reset_links_to(address):
    return [m for m in mails_to(address) if "/reset-password?token=" in m.body]


def state():
    return {
        "users": list(User.objects.order_by("pk").values_list("pk", "email", "email_verified_at", "password")),
        "tokens": list(AccountToken.objects.order_by("pk").values_list("pk", "used_at")),
        "security_tokens": list(SecurityToken.objects.order_by("pk").values_list("pk", "used_at")),
        "sessions": list(DeviceSession.objects.order_by("pk").values_list("pk", "revoked_at")),
        "outbox": OutboxMessage.objects.count(),
    }


@pytest.fixture
def hijacked(authed, user):
    """``user`` (the victim, address ``old``) had a session taken over: the attacker moved the account
    to NEW with it. Returns (old address, the attacker's client)."""
    old = user.email
    move(authed)
    user.refresh_from_db()
    assert user.email == NEW
    return old, authed


# --- the link ----------------------------------------------------------------------------------------
def test_the_old_address_gets_a_single_use_revert_link_valid_7_days(hijacked, user):
    old, _ = hijacked
    message = last_mail_to(old)
    raw = revert_link(old)
    assert "7 days" in message.body and NEW not in message.body and "t***@example.net" in message.body
    stored = AccountToken.objects.get(purpose=TokenPurpose.EMAIL_CHANGE_REVERT)
    assert stored.user_id == user.pk and stored.new_email == old and stored.used_at is None
    assert stored.token_hash != raw and len(stored.token_hash) == 64  # only the hash
    assert stored.expires_at - stored.created_at == timedelta(days=7)


@pytest.mark.parametrize(("configured", "expected"), [(3600, timedelta(days=7)), (14 * 86400, timedelta(days=14))])
def test_the_lifetime_is_configurable_but_never_under_7_days(settings, authed, user, configured, expected):
    settings.ACCOUNTS = {**settings.ACCOUNTS, "EMAIL_CHANGE_REVERT_TTL_SECONDS": configured}
    old = user.email
    move(authed)
    stored = AccountToken.objects.get(purpose=TokenPurpose.EMAIL_CHANGE_REVERT)
    assert stored.expires_at - stored.created_at == expected
    assert f"{expected.days} days" in last_mail_to(old).body


# --- reverting -----------------------------------------------------------------------------------------
def test_revert_restores_the_address_ends_everything_and_resets_to_the_old_address(hijacked, user):
    old, attacker = hijacked
    victim_phone = login(APIClient(), NEW, deviceId="phone")  # any session of the account, whoever holds it
    # Links pending at the moment of the revert, all to the attacker's address or on their behalf:
    services.password_forgot(email=NEW)
    attacker_reset = link_token(last_mail_to(NEW))
    assert attacker.post(CHANGE, {"newEmail": "third@example.net", "password": PASSWORD},
                         format="json").status_code == 202
    pending_change = link_token(last_mail_to("third@example.net"))
    not_me_to_new = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME, ttl=timedelta(days=7),
                                         email=NEW)
    raw = revert_link(old)
    mail.outbox.clear()

    response = post(REVERT, {"token": raw})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["user"]["email"] == old and response.json()["user"]["emailVerified"] is True
    user.refresh_from_db()
    assert user.email == old and user.email_verified and not user.has_usable_password()

    # Every session ended, with its reason; the access tokens stop working at once.
    assert not DeviceSession.objects.alive().filter(user=user).exists()
    assert set(DeviceSession.objects.filter(user=user).values_list("revoked_reason", flat=True)) == {
        RevokeReason.EMAIL_CHANGE_REVERTED}
    assert attacker.get("/api/v1/auth/me").status_code == 401
    assert bearer(victim_phone["accessToken"]).get("/api/v1/auth/me").status_code == 401
    # Every pending link ended: the attacker's reset, the pending change, the "not me" of the new address.
    bad = post("/api/v1/auth/reset-password", {"token": attacker_reset, "password": "Taken-Over-Again-1"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_token"
    assert post(CONFIRM, {"token": pending_change}).json()["error"]["code"] == "invalid_token"
    assert post(NOT_ME, {"token": not_me_to_new}).json()["error"]["code"] == "invalid_token"
    assert not AccountToken.objects.filter(user=user, used_at__isnull=True).exclude(
        purpose=TokenPurpose.RESET_PASSWORD).exists()

    # The reset goes to the restored address, never to the new one; the new one is told, with no link.
    assert reset_links_to(NEW) == []
    notice = last_mail_to(NEW)
    assert notice.subject == "This address was removed from an account" and "?token=" not in notice.body
    reset = link_token(reset_links_to(old)[-1])
    reset_done = post("/api/v1/auth/reset-password", {"token": reset, "password": "Victim-Chooses-Again-7"})
    assert reset_done.status_code == 204
    login(APIClient(), old, "Victim-Chooses-Again-7")
    # Neither the address nor the password the attacker knew signs in any more.
    for email in (old, NEW):
        assert post("/api/v1/auth/login", {"email": email, "password": PASSWORD}).status_code == 401

    row = AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_REVERTED)
    assert row.actor_id == user.pk and row.success
    assert row.context["restored_email"] == f"{old[0]}***@example.com"
    assert row.context["replaced_email"] == "t***@example.net"
    assert row.context["via"] == "revert_link" and row.context["sessions_revoked"] == 2
    assert row.context["links_ended"] >= 4
    assert AuditEvent.objects.filter(event=EventType.PASSWORD_RESET_REQUESTED, subject_id=user.pk,
                                     context__via="revert_link").exists()
    assert raw not in str(row.context)


def test_the_link_is_single_use(hijacked, user):
    old, _ = hijacked
    raw = revert_link(old)
    assert post(REVERT, {"token": raw}).status_code == 200
    before = state()
    again = post(REVERT, {"token": raw})
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_token"
    assert state() == before
    failed = AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_REVERT_FAILED)
    assert failed.context["reason"] == "invalid_token" and not failed.success and failed.subject_id == user.pk


def test_an_expired_link_changes_nothing(hijacked, user):
    old, _ = hijacked
    raw = revert_link(old)
    AccountToken.objects.filter(purpose=TokenPurpose.EMAIL_CHANGE_REVERT).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    before = state()
    response = post(REVERT, {"token": raw})
    assert response.status_code == 400 and response.json()["error"]["code"] == "token_expired"
    assert state() == before
    assert AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_REVERT_FAILED).context["reason"] == "token_expired"


def test_the_link_still_works_on_the_seventh_day(hijacked, user):
    old, _ = hijacked
    raw = revert_link(old)
    AccountToken.objects.filter(purpose=TokenPurpose.EMAIL_CHANGE_REVERT).update(
        created_at=timezone.now() - timedelta(days=6, hours=23, minutes=59),
        expires_at=timezone.now() + timedelta(minutes=1))
    assert post(REVERT, {"token": raw}).status_code == 200


def test_the_link_survives_what_the_new_address_holder_can_do(hijacked, user):
    """Guards the merge with the per-user "security version" of link tokens: a password change, a
    reset through the new address, "sign out everywhere else" and a "this wasn't me" link of the new
    address, all made after the change, must not end the old address's way back."""
    old, attacker = hijacked
    raw = revert_link(old)
    assert attacker.post("/api/v1/auth/change-password", {"currentPassword": PASSWORD,
                                                          "newPassword": ATTACKER_PASSWORD},
                         format="json").status_code == 204
    assert attacker.post("/api/v1/auth/sessions/revoke-others", format="json").status_code == 204
    services.password_forgot(email=NEW)
    assert post("/api/v1/auth/reset-password", {"token": link_token(last_mail_to(NEW)),
                                                "password": "Attacker-Again-Pass-98"}).status_code == 204
    user.refresh_from_db()
    not_me = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME, ttl=timedelta(days=7), email=NEW)
    assert post(NOT_ME, {"token": not_me}).status_code == 204  # the attacker's own "not me": reset to NEW
    mail.outbox.clear()

    response = post(REVERT, {"token": raw})
    assert response.status_code == 200, response.content
    user.refresh_from_db()
    assert user.email == old and not user.has_usable_password()
    assert reset_links_to(NEW) == [] and len(reset_links_to(old)) == 1


def test_a_further_change_keeps_the_first_way_back_and_the_revert_ends_the_later_one(hijacked, user):
    old, attacker = hijacked
    first = revert_link(old)
    assert attacker.post("/api/v1/auth/reauthenticate", {"password": PASSWORD}, format="json").status_code == 200
    move(attacker, "second@example.net")  # the confirm keeps the requesting session
    second = revert_link(NEW)  # NEW's own way back, held by the attacker
    assert AccountToken.objects.filter(purpose=TokenPurpose.EMAIL_CHANGE_REVERT, used_at__isnull=True).count() == 2

    assert post(REVERT, {"token": first}).status_code == 200
    user.refresh_from_db()
    assert user.email == old
    # The later way back (to an address given up now) ended with the revert.
    assert post(REVERT, {"token": second}).json()["error"]["code"] == "invalid_token"
    user.refresh_from_db()
    assert user.email == old


def test_the_later_way_back_used_first_leaves_the_earlier_one_working(hijacked, user):
    old, attacker = hijacked
    first = revert_link(old)
    move(attacker, "second@example.net")
    second = revert_link(NEW)
    assert post(REVERT, {"token": second}).status_code == 200  # back to NEW, by whoever holds NEW
    user.refresh_from_db()
    assert user.email == NEW
    assert post(REVERT, {"token": first}).status_code == 200  # the owner of the first address still wins
    user.refresh_from_db()
    assert user.email == old


def test_an_address_taken_meanwhile_is_409_and_changes_nothing(hijacked, user):
    old, _ = hijacked
    raw = revert_link(old)
    UserFactory(email=old)  # e.g. made by staff: registration itself cannot take it (below)
    before = state()
    response = post(REVERT, {"token": raw})
    assert response.status_code == 409 and response.json()["error"]["code"] == "email_taken"
    assert state() == before  # link unspent, sessions alive, no mail
    row = AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_REVERT_FAILED)
    assert row.subject_id == user.pk and row.context["reason"] == "email_taken"
    assert not AuditEvent.objects.filter(event=EventType.EMAIL_CHANGE_REVERTED).exists()
    User.objects.filter(email=old).exclude(pk=user.pk).delete()
    assert post(REVERT, {"token": raw}).status_code == 200  # the unspent link works once the address is free


def test_the_unique_constraint_is_the_last_word(hijacked, user):
    old, _ = hijacked
    raw = revert_link(old)
    User.objects.bulk_create([User(email=old.upper(), password="!")])  # bypasses the normalizer on purpose
    before = state()
    response = post(REVERT, {"token": raw})
    assert response.status_code == 409 and response.json()["error"]["code"] == "email_taken"
    assert state() == before


@pytest.mark.parametrize("token", ["nope", "a" * 512])
def test_unknown_tokens(hijacked, token):
    before = state()
    response = post(REVERT, {"token": token})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_token"
    assert state() == before
    assert AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_REVERT_FAILED).subject_id is None


def test_tokens_of_other_purposes_do_not_revert(authed, user):
    old = user.email
    assert authed.post(CHANGE, {"newEmail": NEW, "password": PASSWORD}, format="json").status_code == 202
    change_token = link_token(last_mail_to(NEW))
    services.password_forgot(email=old)
    reset_token = link_token(last_mail_to(old))
    for token in (change_token, reset_token):
        response = post(REVERT, {"token": token})
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_token"
    # and a revert token confirms nothing else
    assert post(CONFIRM, {"token": change_token}).status_code == 200
    raw = revert_link(old)
    assert post(CONFIRM, {"token": raw}).json()["error"]["code"] == "invalid_token"
    assert post("/api/v1/auth/verify-email", {"token": raw}).json()["error"]["code"] == "invalid_token"
    assert post(REVERT, {"token": raw}).status_code == 200


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": None}, {"token": 42}, {"token": ["x"]},
                                  {"token": "x" * 513}, {"token": "a\x00b"}])
def test_bad_bodies_are_validation_errors(hijacked, body):
    before = state()
    response = post(REVERT, body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert "token" in response.json()["error"]["fields"]
    assert state() == before


def test_malformed_and_non_json(hijacked):
    client = APIClient()
    assert client.post(REVERT, b'{"token": ', content_type="application/json").json()["error"]["code"] == \
        "malformed_request"
    assert client.post(REVERT, {"token": "x"}, format="multipart").status_code == 415


def test_rate_limited_with_the_not_me_budget(settings, hijacked):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], "not_me": "2/h"}}
    for _ in range(2):
        assert post(REVERT, {"token": "guess-" + "x" * 20}).status_code == 400
    refused = post(REVERT, {"token": "guess-" + "y" * 20})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert int(refused["Retry-After"]) > 0
    assert AuditEvent.objects.get(event=EventType.RATE_LIMITED).context["scope"] == "not_me"


def test_the_user_sees_the_revert_in_their_security_activity(hijacked, user):
    old, _ = hijacked
    assert post(REVERT, {"token": revert_link(old)}).status_code == 200
    services.password_forgot(email=old)
    assert post("/api/v1/auth/reset-password", {"token": link_token(last_mail_to(old)),
                                                "password": "Victim-Chooses-Again-7"}).status_code == 204
    events = bearer(login(APIClient(), old, "Victim-Chooses-Again-7")["accessToken"]).get(
        "/api/v1/auth/me/security-events").json()["events"]
    reverted = [e for e in events if e["event"] == EventType.EMAIL_CHANGE_REVERTED]
    assert len(reverted) == 1 and reverted[0]["details"]["via"] == "revert_link"


# --- the old address stays reserved while its way back is open ----------------------------------------
def test_registering_the_address_an_account_just_left_is_refused_quietly(hijacked, user):
    old, _ = hijacked
    answer = post("/api/v1/auth/register", {"email": old.upper(), "password": ATTACKER_PASSWORD})
    fresh = post("/api/v1/auth/register", {"email": "someone-new@example.org", "password": ATTACKER_PASSWORD})
    assert answer.status_code == fresh.status_code == 202 and answer.json() == fresh.json()  # no enumeration
    assert not User.objects.filter(email=old).exists()
    notice = last_mail_to(old)
    assert notice.subject == "This address is reserved for now" and "?token=" not in notice.body
    row = AuditEvent.objects.get(event=EventType.REGISTER_EXISTING)
    assert row.subject_id == user.pk and row.context["reason"] == "address_reserved" and not row.success
    # ...so the way back still works.
    assert post(REVERT, {"token": revert_link_from_outbox(old)}).status_code == 200


def revert_link_from_outbox(old):
    changed = [m for m in mails_to(old) if m.subject == "Your email address was changed"]
    return link_token(changed[-1])


def test_b2b_registration_is_refused_the_same_way(hijacked, user):
    from orgs.models import PendingOrganization

    old, _ = hijacked
    response = post("/api/v1/auth/register-b2b", {"email": old, "password": ATTACKER_PASSWORD, "name": "X",
                                                  "organizationName": "Squat Inc"})
    assert response.status_code == 202
    assert not User.objects.filter(email=old).exists() and not PendingOrganization.objects.exists()


def test_the_reservation_ends_with_the_link(hijacked, user):
    old, _ = hijacked
    AccountToken.objects.filter(purpose=TokenPurpose.EMAIL_CHANGE_REVERT).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    assert post("/api/v1/auth/register", {"email": old, "password": ATTACKER_PASSWORD}).status_code == 202
    assert User.objects.filter(email=old, email_verified_at__isnull=True).exists()
    assert last_mail_to(old).subject == "Confirm your email address"


def test_the_account_itself_may_move_back_to_its_reserved_address(hijacked, user):
    old, attacker = hijacked
    move(attacker, old)  # an ordinary change back: the reservation is for this account
    user.refresh_from_db()
    assert user.email == old


# --- "this wasn't me" never sends a reset to an address the account moved to ----------------------------
def _new_sign_in_not_me(api, user):
    """Sign in from a new device and network: the account's address gets a new sign-in mail."""
    for ip, ua in (("198.51.100.10", CHROME), ("203.0.113.5", FIREFOX)):
        response = api.post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD}, format="json",
                            REMOTE_ADDR=ip, HTTP_USER_AGENT=ua)
        assert response.status_code == 200
    message = last_mail_to(user.email)
    assert message.subject == "New sign-in to your account"
    return link_token(message), response.json()


def test_not_me_from_the_change_notice_after_the_change_gives_the_address_back(authed, user):
    old = user.email
    assert authed.post(CHANGE, {"newEmail": NEW, "password": PASSWORD}, format="json").status_code == 202
    not_me = link_token(last_mail_to(old))  # "Your email address is being changed", with "this wasn't me"
    assert post(CONFIRM, {"token": link_token(last_mail_to(NEW))}).status_code == 200
    raw = revert_link(old)
    mail.outbox.clear()

    assert post(NOT_ME, {"token": not_me}).status_code == 204
    user.refresh_from_db()
    assert user.email == old and not user.has_usable_password()
    assert reset_links_to(NEW) == [] and len(reset_links_to(old)) == 1
    assert not DeviceSession.objects.alive().filter(user=user).exists()
    reported = AuditEvent.objects.get(event=EventType.NOT_ME_REPORTED)
    assert reported.context["email_restored"] is True
    assert AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_REVERTED).context["via"] == "not_me"
    # The revert link was the one used: it cannot run a second time.
    assert post(REVERT, {"token": raw}).json()["error"]["code"] == "invalid_token"


def test_not_me_from_a_new_sign_in_mail_to_the_old_address(api, user):
    old = user.email
    not_me, attacker_pair = _new_sign_in_not_me(api, user)  # the attacker's sign-in, told to the victim
    move(bearer(attacker_pair["accessToken"]))
    mail.outbox.clear()
    assert post(NOT_ME, {"token": not_me}).status_code == 204
    user.refresh_from_db()
    assert user.email == old
    assert reset_links_to(NEW) == [] and len(reset_links_to(old)) == 1


def test_a_not_me_link_issued_before_the_address_was_recorded_is_traced_to_its_address(authed, user):
    """Links mailed before this change carry no address: the first change after the link names it."""
    old = user.email
    legacy = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME, ttl=timedelta(days=7),
                                  session_id="")
    move(authed)
    mail.outbox.clear()
    assert post(NOT_ME, {"token": legacy}).status_code == 204
    user.refresh_from_db()
    assert user.email == old and reset_links_to(NEW) == [] and len(reset_links_to(old)) == 1


def test_not_me_when_the_address_cannot_come_back_sends_no_reset_anywhere(hijacked, user):
    old, _ = hijacked
    not_me = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME, ttl=timedelta(days=7), email=old)
    UserFactory(email=old)  # the address belongs to another account now
    mail.outbox.clear()
    assert post(NOT_ME, {"token": not_me}).status_code == 204
    user.refresh_from_db()
    assert user.email == NEW and not user.has_usable_password()  # secured, but the reset is not the thief's
    assert reset_links_to(NEW) == [] and reset_links_to(old) == []
    assert not DeviceSession.objects.alive().filter(user=user).exists()
    assert AuditEvent.objects.get(event=EventType.NOT_ME_REPORTED).context["reset_sent"] is False
    assert AccountToken.objects.get(purpose=TokenPurpose.EMAIL_CHANGE_REVERT).used_at is None  # still there


def test_not_me_after_the_way_back_expired_sends_no_reset_to_the_new_address(hijacked, user):
    old, _ = hijacked
    not_me = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME, ttl=timedelta(days=30), email=old)
    AccountToken.objects.filter(purpose=TokenPurpose.EMAIL_CHANGE_REVERT).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    mail.outbox.clear()
    assert post(NOT_ME, {"token": not_me}).status_code == 204
    user.refresh_from_db()
    assert user.email == NEW and reset_links_to(NEW) == []


def test_not_me_of_the_current_address_still_resets_there_and_keeps_the_way_back(hijacked, user):
    old, _ = hijacked
    raw = revert_link(old)
    not_me = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME, ttl=timedelta(days=7), email=NEW)
    mail.outbox.clear()
    assert post(NOT_ME, {"token": not_me}).status_code == 204
    assert len(reset_links_to(NEW)) == 1
    assert AuditEvent.objects.get(event=EventType.NOT_ME_REPORTED).context["reset_sent"] is True
    assert post(REVERT, {"token": raw}).status_code == 200


@pytest.mark.postgres
def test_concurrent_reverts_succeed_once(transactional_db, hijacked, user):
    """Real concurrent requests on PostgreSQL: one 200, the others 400, one revert row."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    old, _ = hijacked
    raw = revert_link(old)

    def run(_):
        try:
            return post(REVERT, {"token": raw}).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(run, range(4)))
    assert codes == [200, 400, 400, 400]
    assert AuditEvent.objects.filter(event=EventType.EMAIL_CHANGE_REVERTED).count() == 1
    assert len(reset_links_to(old)) == 1
