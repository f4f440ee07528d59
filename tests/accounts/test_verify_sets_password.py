"""Issue 14, pre-account takeover: whoever registers someone else's address chooses a password, but
that password must not survive the verification. Verifying an account that has never signed in
requires a password (POST verify-email ``{token, password}``); it becomes the account's password."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import AccountToken, TokenPurpose, User
from audit.models import AuditEvent, EventType
from flows import registration
from orgs.models import Membership, Organization, OrgRole, PendingOrganization
from tests.conftest import last_mail_to, link_token, login
from tests.factories import PASSWORD, UserFactory

VERIFY = "/api/v1/auth/verify-email"
VICTIM = "victim@example.org"
ATTACKER_PASSWORD = "Attacker-Chosen-Pass-99"
VICTIM_PASSWORD = "Victims-Own-Passphrase-7"


def post(path, body):
    return APIClient().post(path, body, format="json")


def register(email=VICTIM, password=ATTACKER_PASSWORD, **extra):
    assert post("/api/v1/auth/register", {"email": email, "password": password, **extra}).status_code == 202
    return link_token(last_mail_to(email))


def token_row():
    return AccountToken.objects.get(purpose=TokenPurpose.VERIFY_EMAIL)


def can_log_in(email, password):
    return post("/api/v1/auth/login", {"email": email, "password": password}).status_code == 200


def test_the_password_set_by_whoever_registered_does_not_survive(db):
    token = register()  # someone else registered the victim's address, with a password they know
    response = post(VERIFY, {"token": token, "password": VICTIM_PASSWORD})  # the victim opens the link
    assert response.status_code == 200, response.content
    assert response.json()["user"]["email"] == VICTIM and response.json()["user"]["emailVerified"] is True
    assert not can_log_in(VICTIM, ATTACKER_PASSWORD)
    assert can_log_in(VICTIM, VICTIM_PASSWORD)
    row = AuditEvent.objects.get(event=EventType.EMAIL_VERIFIED)
    assert row.context["credentials_set"] is True and VICTIM_PASSWORD not in str(row.context)


def test_the_registrant_confirming_their_own_password_works(db):
    token = register(password=VICTIM_PASSWORD)
    assert post(VERIFY, {"token": token, "password": VICTIM_PASSWORD}).status_code == 200
    assert can_log_in(VICTIM, VICTIM_PASSWORD)


def test_without_a_password_it_is_400_password_required_and_the_link_keeps_working(db):
    token = register()
    response = post(VERIFY, {"token": token})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "password_required" and list(error["fields"]) == ["password"]
    user = User.objects.get(email=VICTIM)
    assert not user.email_verified and user.check_password(ATTACKER_PASSWORD)
    assert token_row().used_at is None
    failed = AuditEvent.objects.get(event=EventType.EMAIL_VERIFICATION_FAILED)
    assert failed.context["reason"] == "password_required" and not failed.success
    assert post(VERIFY, {"token": token, "password": VICTIM_PASSWORD}).status_code == 200


@pytest.mark.parametrize("password", ["short", "x" * 129, "password1234"])
def test_a_password_against_the_policy_changes_nothing(db, password):
    token = register()
    response = post(VERIFY, {"token": token, "password": password})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert "password" in response.json()["error"]["fields"]
    user = User.objects.get(email=VICTIM)
    assert not user.email_verified and user.check_password(ATTACKER_PASSWORD) and token_row().used_at is None
    assert AuditEvent.objects.get(event=EventType.EMAIL_VERIFICATION_FAILED).context["reason"] == "validation_error"


@pytest.mark.parametrize("password", [42, None, "", ["x"], {"a": "b"}, True, "a\x00b" * 5, "y" * 4097])
def test_a_password_of_the_wrong_shape_is_a_validation_error(db, password):
    token = register()
    response = post(VERIFY, {"token": token, "password": password})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert "password" in response.json()["error"]["fields"]
    assert token_row().used_at is None and not User.objects.get(email=VICTIM).email_verified


def test_a_dead_link_says_so_before_asking_for_a_password(db):
    token = register()
    AccountToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert post(VERIFY, {"token": token}).json()["error"]["code"] == "token_expired"
    AccountToken.objects.update(expires_at=timezone.now() + timedelta(hours=1))
    assert post(VERIFY, {"token": token, "password": VICTIM_PASSWORD}).status_code == 200
    assert post(VERIFY, {"token": token}).json()["error"]["code"] == "invalid_token"
    assert post(VERIFY, {"token": "unknown-" + "x" * 30}).json()["error"]["code"] == "invalid_token"


def test_an_account_that_has_signed_in_needs_no_password_and_keeps_its_own(db):
    """E.g. staff marked the address unverified again: the owner has signed in, nothing to take over."""
    user = UserFactory(email_verified_at=None, last_login=timezone.now() - timedelta(days=3))
    services.verification_resend(email=user.email)
    token = link_token(last_mail_to(user.email))
    response = post(VERIFY, {"token": token, "password": "Ignored-For-This-Account-1"})
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.email_verified and user.check_password(PASSWORD)
    assert AuditEvent.objects.get(event=EventType.EMAIL_VERIFIED).context["credentials_set"] is False

    user.email_verified_at = None
    user.save()
    services.verification_resend(email=user.email)
    assert post(VERIFY, {"token": link_token(last_mail_to(user.email))}).status_code == 200


def test_the_service_requires_it_too(db):
    token = register()
    with pytest.raises(services.PasswordRequired):
        registration.email_verify(token=token)
    assert registration.email_verify(token=token, password=VICTIM_PASSWORD).email == VICTIM


# --- register-b2b: the same rule, and the organization waits for it ------------------------------------
def test_b2b_sign_up_by_someone_else(db):
    response = post("/api/v1/auth/register-b2b", {"email": VICTIM, "password": ATTACKER_PASSWORD, "name": "Fay",
                                                  "organizationName": "Acme GmbH"})
    assert response.status_code == 202
    token = link_token(last_mail_to(VICTIM))
    refused = post(VERIFY, {"token": token})
    assert refused.json()["error"]["code"] == "password_required"
    assert not Organization.objects.exists() and PendingOrganization.objects.count() == 1  # nothing half-done

    assert post(VERIFY, {"token": token, "password": VICTIM_PASSWORD}).status_code == 200
    membership = Membership.objects.get(organization=Organization.objects.get(name="Acme GmbH"))
    assert membership.user.email == VICTIM and membership.role == OrgRole.OWNER
    assert not can_log_in(VICTIM, ATTACKER_PASSWORD)
    pair = login(APIClient(), VICTIM, VICTIM_PASSWORD)
    assert pair["user"]["email"] == VICTIM


@pytest.mark.postgres
def test_concurrent_verifications_with_different_passwords_leave_one(transactional_db):
    """Real concurrent requests on PostgreSQL: one 200, the other 400, and the winner's password."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    token = register()
    passwords = ["First-Racing-Passphrase-1", "Second-Racing-Passphrase-2"]

    def run(password):
        try:
            return post(VERIFY, {"token": token, "password": password}).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(run, passwords))
    assert sorted(codes) == [200, 400]
    winner = passwords[codes.index(200)]
    assert can_log_in(VICTIM, winner) and not can_log_in(VICTIM, passwords[codes.index(400)])
