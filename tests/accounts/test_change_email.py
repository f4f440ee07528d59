"""Email change (issue 4 step-up, issue 14: the current password too): POST change-email and POST
confirm-email-change, and their service."""

from datetime import timedelta
from functools import partial

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import AccountToken, TokenPurpose, User
from audit.models import AuditEvent, EventType
from flows import email_change
from identity.services.tokens import access_token_verify
from notifications.models import OutboxMessage
from sessions_app.models import DeviceSession, RevokeReason
from tests.factories import PASSWORD, UserFactory
from tests.support.auth import bearer, login
from tests.support.mail import last_mail_to, link_token
from tests.support.races import race

CHANGE = "/api/v1/auth/change-email"
CONFIRM = "/api/v1/auth/confirm-email-change"
NEW = "moved@example.org"


def change(client, new_email=NEW, password=PASSWORD, **extra):
    return client.post(CHANGE, {"newEmail": new_email, "password": password, **extra}, format="json")


def confirm(token):
    return APIClient().post(CONFIRM, {"token": token}, format="json")


def make_stale():
    DeviceSession.objects.update(reauthenticated_at=timezone.now() - timedelta(minutes=11))


def state():
    return {
        "users": list(User.objects.order_by("pk").values_list("pk", "email", "email_verified_at")),
        "tokens": list(AccountToken.objects.order_by("pk").values_list("pk", "used_at")),
        "sessions": list(DeviceSession.objects.order_by("pk").values_list("pk", "revoked_at")),
        "outbox": OutboxMessage.objects.count(),
    }


# --- the whole flow ------------------------------------------------------------------------------------
def test_change_then_confirm_moves_the_account(authed, tokens, user):
    old = user.email
    mail.outbox.clear()
    response = change(authed, " Moved@Example.ORG ")  # normalized exactly like register
    assert response.status_code == 202 and set(response.json()) == {"detail"}
    user.refresh_from_db()
    assert user.email == old  # nothing changes before the link is opened

    link_mail = last_mail_to(NEW)
    assert "/account/email/confirm?token=" in link_mail.body and "24 hours" in link_mail.body
    token = link_token(link_mail)
    stored = AccountToken.objects.get(purpose=TokenPurpose.CHANGE_EMAIL)
    assert stored.token_hash != token and len(stored.token_hash) == 64  # only the hash
    assert stored.new_email == NEW and str(stored.requested_session_id) == tokens["session"]["id"]
    notice = last_mail_to(old)
    assert "m***@example.org" in notice.body and NEW not in notice.body
    assert "/account/not-me?token=" in notice.body

    confirmed = confirm(token)
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["user"]["email"] == NEW and confirmed.json()["user"]["emailVerified"] is True
    user.refresh_from_db()
    assert user.email == NEW and user.email_verified_at is not None
    changed = last_mail_to(old)
    assert changed.subject == "Your email address was changed" and "m***@example.org" in changed.body

    row = AuditEvent.objects.get(event=EventType.EMAIL_CHANGED)
    assert row.actor_id == user.pk and row.success
    assert row.context["old_email"] == "u***@example.com" and row.context["new_email"] == "m***@example.org"
    requested = AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_REQUESTED)
    assert requested.context["new_email"] == "m***@example.org" and requested.context["address_in_use"] is False

    assert APIClient().post("/api/v1/auth/login", {"email": old, "password": PASSWORD},
                            format="json").status_code == 401
    login(APIClient(), NEW)


def test_confirm_keeps_the_requesting_session_and_revokes_the_others(api, authed, tokens, user):
    other = login(APIClient(), user.email, deviceId="phone")
    change(authed)
    assert confirm(link_token(last_mail_to(NEW))).status_code == 200
    kept = DeviceSession.objects.get(pk=tokens["session"]["id"])
    gone = DeviceSession.objects.get(pk=other["session"]["id"])
    assert kept.revoked_at is None
    assert gone.revoked_at is not None and gone.revoked_reason == RevokeReason.EMAIL_CHANGED
    assert bearer(other["accessToken"]).get("/api/v1/auth/me").status_code == 401
    # The kept session's access token (old email claim) keeps working until it expires; /me and the
    # next refresh carry the new address.
    me = authed.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json()["email"] == NEW
    refreshed = api.post("/api/v1/auth/refresh", {"refreshToken": tokens["refreshToken"]}, format="json")
    assert access_token_verify(refreshed.json()["accessToken"])["email"] == NEW
    assert AuditEvent.objects.get(event=EventType.EMAIL_CHANGED).context["sessions_revoked"] == 1


def test_confirm_invalidates_links_mailed_to_the_old_address(authed, user):
    services.password_forgot(email=user.email)
    reset = link_token(last_mail_to(user.email))
    change(authed)
    assert confirm(link_token(last_mail_to(NEW))).status_code == 200
    response = APIClient().post("/api/v1/auth/reset-password", {"token": reset, "password": "Yet-Another-Pass-123"},
                                format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_token"


# --- step-up -------------------------------------------------------------------------------------------
def test_stale_session_gets_403_and_nothing_changes(authed, tokens, user):
    make_stale()
    mail.outbox.clear()
    before = state()
    response = change(authed)
    assert response.status_code == 403 and response.json()["error"]["code"] == "reauthentication_required"
    assert state() == before and mail.outbox == []
    row = AuditEvent.objects.get(event=EventType.REAUTHENTICATION_REQUIRED)
    assert row.actor_id == user.pk and not row.success and row.context["action"] == f"POST {CHANGE}"
    assert authed.post("/api/v1/auth/reauthenticate", {"password": PASSWORD}, format="json").status_code == 200
    assert change(authed).status_code == 202


def test_needs_authentication(api):
    response = change(api)
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_a_wrong_password_changes_nothing_and_is_audited(authed, user):
    mail.outbox.clear()
    before = state()
    response = change(authed, password="Not-The-Password-1")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_password"
    assert response.json()["error"]["fields"] == {"password": ["The password is incorrect."]}
    assert state() == before and mail.outbox == []
    row = AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_FAILED)
    assert row.actor_id == user.pk and row.context["reason"] == "invalid_password" and not row.success
    assert change(authed, password=PASSWORD).status_code == 202


# --- no enumeration ------------------------------------------------------------------------------------
def test_taken_and_free_addresses_get_the_same_answer(authed, user):
    owner = UserFactory(email="taken@example.org")
    mail.outbox.clear()
    free = change(authed, "free@example.org")
    taken = change(authed, "TAKEN@example.org")
    assert free.status_code == taken.status_code == 202 and free.json() == taken.json()
    # The old address hears the same in both cases (only the masked address differs).
    notices = [m for m in mail.outbox if m.to == [user.email]]
    assert [m.subject for m in notices] == ["Your email address is being changed"] * 2
    assert notices[0].body.replace("f***@", "t***@").split("not-me?token=")[0] == \
        notices[1].body.split("not-me?token=")[0]
    # The owner of the taken address gets a notice, never a link; the free one a link.
    assert "?token=" not in last_mail_to(owner.email).body
    assert "/account/email/confirm?token=" in last_mail_to("free@example.org").body
    # The requester's own security activity looks the same for both.
    events = authed.get("/api/v1/auth/me/security-events").json()["events"]
    requested = [e for e in events if e["event"] == EventType.EMAIL_CHANGE_REQUESTED]
    assert len(requested) == 2
    assert {(e["success"], str(e["details"])) for e in requested} == {(True, "{}")}
    # A later request replaces the pending one in both cases: the free address's link is dead now.
    assert not AccountToken.objects.filter(purpose=TokenPurpose.CHANGE_EMAIL, used_at__isnull=True).exists()
    owner.refresh_from_db()
    user.refresh_from_db()
    assert owner.email == "taken@example.org" and user.email != "taken@example.org"


def test_a_new_request_replaces_the_pending_one(authed):
    change(authed, "first@example.org")
    first = link_token(last_mail_to("first@example.org"))
    change(authed, "second@example.org")
    second = link_token(last_mail_to("second@example.org"))
    assert confirm(first).json()["error"]["code"] == "invalid_token"
    assert confirm(second).status_code == 200


# --- tokens --------------------------------------------------------------------------------------------
def test_token_is_single_use(authed):
    change(authed)
    token = link_token(last_mail_to(NEW))
    assert confirm(token).status_code == 200
    again = confirm(token)
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_token"
    failed = AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_FAILED)
    assert failed.context["reason"] == "invalid_token" and not failed.success


def test_expired_token(authed, user, settings):
    change(authed)
    token = link_token(last_mail_to(NEW))
    AccountToken.objects.filter(purpose=TokenPurpose.CHANGE_EMAIL).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    before = state()
    response = confirm(token)
    assert response.status_code == 400 and response.json()["error"]["code"] == "token_expired"
    assert state() == before
    row = AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_FAILED)
    assert row.subject_id == user.pk and row.context["reason"] == "token_expired"


def test_expiry_is_configurable(authed, settings):
    settings.ACCOUNTS = {**settings.ACCOUNTS, "EMAIL_CHANGE_TTL_SECONDS": 3600}
    change(authed)
    token = AccountToken.objects.get(purpose=TokenPurpose.CHANGE_EMAIL)
    assert abs((token.expires_at - token.created_at) - timedelta(hours=1)) < timedelta(seconds=1)
    assert "1 hours" in last_mail_to(NEW).body


@pytest.mark.parametrize("token", ["nope", "", "a" * 512])
def test_wrong_token(authed, token):
    change(authed)
    before = state()
    response = confirm(token)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_token", "validation_error")
    assert state() == before


def test_another_kind_of_token_does_not_confirm_a_change(authed, user):
    services.password_forgot(email=user.email)
    response = confirm(link_token(last_mail_to(user.email)))
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_token"


def test_not_me_from_the_notice_cancels_the_pending_change(authed, user):
    old = user.email
    change(authed)
    token = link_token(last_mail_to(NEW))
    not_me = link_token(last_mail_to(old))
    assert APIClient().post("/api/v1/auth/not-me", {"token": not_me}, format="json").status_code == 204
    assert confirm(token).json()["error"]["code"] == "invalid_token"
    user.refresh_from_db()
    assert user.email == old
    assert AuditEvent.objects.get(event=EventType.NOT_ME_REPORTED).context["email_changes_cancelled"] == 1


# --- races -----------------------------------------------------------------------------------------
def test_address_taken_between_request_and_confirm_is_409_and_changes_nothing(authed, user):
    old = user.email
    change(authed)
    token = link_token(last_mail_to(NEW))
    assert APIClient().post("/api/v1/auth/register", {"email": NEW, "password": "Some-Long-Password-1"},
                            format="json").status_code == 202
    before = state()
    response = confirm(token)
    assert response.status_code == 409 and response.json()["error"]["code"] == "email_taken"
    assert state() == before  # token unspent, sessions alive, no mail
    user.refresh_from_db()
    assert user.email == old
    row = AuditEvent.objects.get(event=EventType.EMAIL_CHANGE_FAILED)
    assert row.subject_id == user.pk and row.context["reason"] == "email_taken"
    assert not AuditEvent.objects.filter(event=EventType.EMAIL_CHANGED).exists()


def test_the_unique_constraint_is_the_last_word(authed, user):
    """A row the existence check cannot see (another case, as a concurrent writer could race in) still
    stops the change: the case-insensitive constraint, answered 409, nothing half-done."""
    change(authed)
    token = link_token(last_mail_to(NEW))
    User.objects.bulk_create([User(email=NEW.upper(), password="!")])  # bypasses the normalizer on purpose
    before = state()
    response = confirm(token)
    assert response.status_code == 409 and response.json()["error"]["code"] == "email_taken"
    assert state() == before


@pytest.mark.postgres
def test_two_accounts_racing_for_one_address_one_wins(api):
    """Real concurrent confirms on PostgreSQL: one 200, one 409, one owner."""
    tokens = []
    for _n in range(2):
        racer = UserFactory()
        client = bearer(login(APIClient(), racer.email)["accessToken"])
        assert change(client, "prize@example.org").status_code == 202
        tokens.append(link_token(last_mail_to("prize@example.org")))

    codes = sorted(response.status_code for response in race(*(partial(confirm, token) for token in tokens)))
    assert codes == [200, 409]
    assert User.objects.filter(email="prize@example.org").count() == 1


# --- input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["not-an-email", "a@", "@example.org", "x" * 250 + "@example.org", 42, None,
                                   ["a@example.org"], "émoji😀@exa mple.org"])
def test_bad_new_email_is_a_validation_error(authed, value):
    before = state()
    response = authed.post(CHANGE, {"newEmail": value}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert "newEmail" in response.json()["error"]["fields"]
    assert state() == before


def test_same_address_is_refused(authed, user):
    response = change(authed, user.email.upper())
    assert response.status_code == 400 and response.json()["error"]["fields"]["newEmail"] == [
        "This is already your email address."]


def test_malformed_and_missing(authed):
    assert authed.post(CHANGE, b'{"newEmail": ', content_type="application/json").json()["error"]["code"] == \
        "malformed_request"
    missing = authed.post(CHANGE, {}, format="json")
    assert missing.status_code == 400 and set(missing.json()["error"]["fields"]) == {"newEmail", "password"}
    form = authed.post(CHANGE, {"newEmail": NEW}, format="multipart")
    assert form.status_code == 415
    missing_token = APIClient().post(CONFIRM, {}, format="json")
    assert missing_token.status_code == 400 and set(missing_token.json()["error"]["fields"]) == {"token"}


def test_service_validates_on_its_own(user):
    """The page and the API share it: a bad address is refused there too."""
    with pytest.raises(services.ApiError) as caught:
        email_change.email_change_request(user=user, session=None, new_email="not-an-email", password=PASSWORD)
    assert caught.value.code == "validation_error"


# --- rate limit ------------------------------------------------------------------------------------------
def test_three_requests_per_five_minutes_per_user(settings, authed, user):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"],
                                                               "change_email": "3/5m"}}
    for n in range(3):
        assert change(authed, f"n{n}@example.org").status_code == 202
    refused = change(authed, "n4@example.org")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert int(refused["Retry-After"]) > 0
    assert AuditEvent.objects.get(event=EventType.RATE_LIMITED).context["scope"] == "change_email"
    someone_else = UserFactory()
    client = bearer(login(APIClient(), someone_else.email)["accessToken"])
    assert change(client, "other@example.org").status_code == 202  # per user, not per address


def test_reauthenticate_has_its_own_per_user_budget(settings, api, authed, user):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"],
                                                               "reauthenticate": "2/m", "login": "2/m"}}
    for _ in range(2):
        assert authed.post("/api/v1/auth/reauthenticate", {"password": "Wrong-Password-123"},
                           format="json").status_code == 401
    refused = authed.post("/api/v1/auth/reauthenticate", {"password": PASSWORD}, format="json")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    # The login budget of the same address is untouched (the fixture's login spent none of the new one).
    assert api.post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD}, format="json").status_code == 200
