"""Brute force: django-axes per (account, IP), 429 account_locked, known devices, unlock link, admin."""

from datetime import timedelta

from axes.models import AccessAttempt
from django.core import mail
from django.test import RequestFactory

from audit.models import AuditEvent, EventType
from core.tokens import hash_token
from security.admin import AuditedAccessAttemptAdmin
from security.models import SecurityToken, SecurityTokenPurpose
from tests.factories import UserFactory
from tests.support.auth import login_attempt
from tests.support.mail import last_mail_to, link_token

WRONG = "Wrong-Password-123456"


def fail(api, email, times, ip="127.0.0.1"):
    return [login_attempt(api, email, WRONG, ip=ip) for _ in range(times)]


def test_fifth_failure_locks_with_429_and_retry_after(api, user):
    responses = fail(api, user.email, 5)
    assert [r.status_code for r in responses[:4]] == [401] * 4
    locked = responses[4]
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "account_locked"
    assert 890 <= int(locked["Retry-After"]) <= 900
    assert AuditEvent.objects.filter(event=EventType.ACCOUNT_LOCKED, subject_id=user.pk, success=False).count() == 1


def test_locked_answer_is_the_same_for_the_right_and_a_wrong_password(api, user, password):
    fail(api, user.email, 5)
    right, wrong = login_attempt(api, user.email, password), login_attempt(api, user.email, WRONG)
    assert right.status_code == wrong.status_code == 429
    assert right.json() == wrong.json()
    assert set(right.headers) == set(wrong.headers)
    # Attempts while locked do not extend the lock (15 minutes from the locking failure).
    assert int(right["Retry-After"]) <= 900


def test_lock_is_per_account_and_ip(api, user, password):
    fail(api, user.email, 5, ip="203.0.113.7")
    assert login_attempt(api, user.email, password, ip="203.0.113.7").status_code == 429
    assert login_attempt(api, user.email, password, ip="198.51.100.1").status_code == 200  # the owner elsewhere
    other = UserFactory()
    assert login_attempt(api, other.email, password, ip="203.0.113.7").status_code == 200  # other accounts


def test_success_resets_the_failures(api, user, password):
    fail(api, user.email, 4)
    assert login_attempt(api, user.email, password).status_code == 200
    assert [r.status_code for r in fail(api, user.email, 4)] == [401] * 4


def test_lock_ends_after_the_cool_off(api, user, password):
    fail(api, user.email, 5)
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert login_attempt(api, user.email, password).status_code == 200


def test_unknown_email_locks_the_same_way_without_mail(api):
    responses = fail(api, "nobody@example.com", 6)
    assert [r.status_code for r in responses] == [401] * 4 + [429, 429]
    assert mail.outbox == []


def test_a_known_device_keeps_working_while_strangers_are_locked_out(api, user, password):
    device_token = login_attempt(api, user.email, password).json()["deviceToken"]
    fail(api, user.email, 6)  # a stranger on the same address
    assert login_attempt(api, user.email, password).status_code == 429
    assert login_attempt(api, user.email, password, deviceToken=device_token).status_code == 200
    # The token is bound to its account and signed: it exempts nothing else.
    other = UserFactory()
    fail(api, other.email, 5)
    assert login_attempt(api, other.email, password, deviceToken=device_token).status_code == 429
    assert login_attempt(api, user.email, password, deviceToken=device_token[:-2] + "xx").status_code == 429


def test_lockout_mails_a_single_use_unlock_link(api, user, password):
    fail(api, user.email, 5)
    message = last_mail_to(user.email)
    assert "/account/unlock?token=" in message.body and "127.0.0.1" in message.body
    raw = link_token(message)
    token = SecurityToken.objects.get(user=user, purpose=SecurityTokenPurpose.UNLOCK)
    assert token.token_hash == hash_token(raw) and raw not in str(token.__dict__)
    fail(api, user.email, 2)  # more attempts while locked: no second mail
    assert len([m for m in mail.outbox if user.email in m.to]) == 1

    response = api.post("/api/v1/auth/unlock", {"token": raw}, format="json")
    assert response.status_code == 200 and response["Cache-Control"].count("no-store")
    assert response.json()["deviceToken"]
    assert login_attempt(api, user.email, password).status_code == 200
    again = api.post("/api/v1/auth/unlock", {"token": raw}, format="json")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_token"
    row = AuditEvent.objects.get(event=EventType.ACCOUNT_UNLOCKED)
    assert row.actor_id == user.pk and row.context["via"] == "email_link"


def test_unlock_link_lifts_only_the_lock_of_the_address_it_is_opened_from(api, user, password):
    fail(api, user.email, 5, ip="203.0.113.7")  # the attacker
    raw = link_token(last_mail_to(user.email))
    fail(api, user.email, 5, ip="198.51.100.1")  # the owner, mistyping
    assert api.post("/api/v1/auth/unlock", {"token": raw}, format="json", REMOTE_ADDR="198.51.100.1").status_code == 200
    assert login_attempt(api, user.email, password, ip="198.51.100.1").status_code == 200
    assert login_attempt(api, user.email, password, ip="203.0.113.7").status_code == 429


def test_staff_unlock_in_the_admin_is_audited(api, user, password):
    fail(api, user.email, 5)
    staff = UserFactory(is_staff=True, is_superuser=True)
    request = RequestFactory().post("/admin/axes/accessattempt/")
    request.user = staff
    model_admin = AuditedAccessAttemptAdmin(AccessAttempt, None)
    model_admin.message_user = lambda *args, **kwargs: None
    model_admin.unlock(request, AccessAttempt.objects.all())
    assert not AccessAttempt.objects.exists()
    assert login_attempt(api, user.email, password).status_code == 200
    row = AuditEvent.objects.get(event=EventType.ACCOUNT_UNLOCKED)
    assert (row.actor_id, row.subject_id, row.context["via"]) == (staff.pk, user.pk, "admin")


def test_a_known_device_signing_in_does_not_reset_a_strangers_count(api, user, password):
    device_token = login_attempt(api, user.email, password).json()["deviceToken"]
    fail(api, user.email, 4)
    assert login_attempt(api, user.email, password, deviceToken=device_token).status_code == 200
    assert login_attempt(api, user.email, WRONG).status_code == 429


def test_axes_middleware_keeps_the_views_own_lockout_answer(rf):
    from django.http import HttpResponse

    from security.lockout import axes_lockout_response

    page = HttpResponse("<p>locked</p>", status=429)
    assert axes_lockout_response(rf.post("/login"), page, {"email": "a@example.com"}) is page
    fallback = axes_lockout_response(rf.post("/login"), HttpResponse(status=200), {"email": "a@example.com"})
    assert fallback.status_code == 429 and b"account_locked" in fallback.content
    assert "Access-Control-Allow-Origin" not in fallback and int(fallback["Retry-After"]) >= 1
