"""Verification (24 h) and reset (1 h) tokens: single-use, expiring, stored only as hashes."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import AccountToken, AccountTokenQuerySet, TokenPurpose, User
from accounts.services import ExpiredLinkToken, InvalidLinkToken
from audit.models import AuditEvent, EventType
from core.tokens import hash_token
from flows import registration
from flows.passwords import password_reset
from notifications.models import OutboxMessage
from tests.factories import PASSWORD, UserFactory
from tests.support.errors import error_code
from tests.support.mail import last_mail_to, link_token
from tests.support.races import race

REG = "/api/v1/auth/register"
VERIFY = "/api/v1/auth/verify-email"
FORGOT = "/api/v1/auth/forgot-password"
RESET = "/api/v1/auth/reset-password"
RESEND = "/api/v1/auth/resend-verification"
NEW_PASSWORD = "brand-new-password-1"


def _register(api, email="new@example.com", password="a-long-enough-pass"):
    r = api.post(REG, {"email": email, "password": password, "name": "Nia"}, format="json")
    assert r.status_code == 202
    return link_token(last_mail_to(email))


def _forgot(api, email):
    assert api.post(FORGOT, {"email": email}, format="json").status_code == 202
    return link_token(last_mail_to(email))


def test_lifetimes_are_24_hours_and_1_hour(api, user):
    _register(api)
    verify = AccountToken.objects.get(purpose=TokenPurpose.VERIFY_EMAIL)
    assert verify.expires_at - verify.created_at == timedelta(hours=24)
    _forgot(api, user.email)
    reset = AccountToken.objects.get(purpose=TokenPurpose.RESET_PASSWORD)
    assert reset.expires_at - reset.created_at == timedelta(hours=1)


def test_tokens_are_stored_only_as_hashes(api, user):
    raw_verify = _register(api)
    raw_reset = _forgot(api, user.email)
    for raw in (raw_verify, raw_reset):
        row = AccountToken.objects.get(token_hash=hash_token(raw))
        assert raw not in {row.token_hash, str(row.pk)}
        assert not AccountToken.objects.filter(token_hash=raw).exists()
    # nor in readable form in the outbox: encrypted until sent, erased once delivered
    for message in OutboxMessage.objects.all():
        assert raw_verify not in message.payload_encrypted and raw_reset not in message.payload_encrypted
        assert message.payload_encrypted == ""


def test_verification_token_is_single_use(api, db):
    token = _register(api)
    assert api.post(VERIFY, {"token": token, "password": "a-long-enough-pass"}, format="json").status_code == 200
    assert error_code(api.post(VERIFY, {"token": token}, format="json"), 400) == "invalid_token"


def test_verification_token_expires(api, db):
    token = _register(api)
    AccountToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert error_code(api.post(VERIFY, {"token": token}, format="json"), 400) == "token_expired"
    assert not User.objects.get().email_verified
    assert AccountToken.objects.get().used_at is None  # an expired link is not spent by trying it


def test_verification_token_still_works_just_before_expiry(api, db):
    token = _register(api)
    AccountToken.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59),
                                expires_at=timezone.now() + timedelta(minutes=1))
    assert api.post(VERIFY, {"token": token, "password": "a-long-enough-pass"}, format="json").status_code == 200


def test_reset_token_is_single_use_and_expires(api, user):
    token = _forgot(api, user.email)
    AccountToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert error_code(api.post(RESET, {"token": token, "password": NEW_PASSWORD}, format="json"),
                      400) == "token_expired"
    user.refresh_from_db()
    assert user.check_password(PASSWORD)

    token = _forgot(api, user.email)
    assert api.post(RESET, {"token": token, "password": NEW_PASSWORD}, format="json").status_code == 204
    assert error_code(api.post(RESET, {"token": token, "password": "yet-another-password-3"},
                                format="json"), 400) == "invalid_token"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


@pytest.mark.parametrize("token", ["", "x", "unknown-token-" + "a" * 30])
def test_unknown_tokens_are_invalid(api, db, token):
    for path, body in ((VERIFY, {"token": token}), (RESET, {"token": token, "password": NEW_PASSWORD})):
        r = api.post(path, body, format="json")
        assert r.status_code == 400
        assert r.json()["error"]["code"] in {"invalid_token", "validation_error"}  # "" fails the shape check
        if token:
            assert r.json()["error"]["code"] == "invalid_token"


def test_a_token_of_the_other_purpose_is_invalid(api, user):
    reset = _forgot(api, user.email)
    assert error_code(api.post(VERIFY, {"token": reset}, format="json"), 400) == "invalid_token"
    verify = _register(api)
    assert error_code(api.post(RESET, {"token": verify, "password": NEW_PASSWORD}, format="json"),
                      400) == "invalid_token"


def test_a_new_reset_request_invalidates_the_earlier_link(api, user):
    first = _forgot(api, user.email)
    second = _forgot(api, user.email)
    assert first != second
    assert error_code(api.post(RESET, {"token": first, "password": NEW_PASSWORD}, format="json"),
                      400) == "invalid_token"
    assert api.post(RESET, {"token": second, "password": NEW_PASSWORD}, format="json").status_code == 204


def test_resend_verification_sends_a_new_link_only_to_unverified_accounts(api, user):
    first = _register(api, "pending@example.com")
    mail.outbox.clear()
    for email in ("pending@example.com", user.email, "nobody@example.com", "PENDING@example.com"):
        r = api.post(RESEND, {"email": email}, format="json")
        assert r.status_code == 202
    assert {m.to[0] for m in mail.outbox} == {"pending@example.com"}
    assert len(mail.outbox) == 2
    newest = link_token(mail.outbox[-1])
    older = link_token(mail.outbox[0])
    assert len({first, older, newest}) == 3
    # only the newest link works
    assert error_code(api.post(VERIFY, {"token": first}, format="json"), 400) == "invalid_token"
    assert error_code(api.post(VERIFY, {"token": older}, format="json"), 400) == "invalid_token"
    assert api.post(VERIFY, {"token": newest, "password": "a-long-enough-pass"}, format="json").status_code == 200


def test_resend_verification_answers_the_same_for_every_address(api, user):
    _register(api, "pending@example.com")
    answers = [api.post(RESEND, {"email": e}, format="json") for e in ("pending@example.com", user.email, "no@example.com")]
    assert {r.status_code for r in answers} == {202}
    assert len({r.content for r in answers}) == 1


def test_registering_again_on_an_unverified_account_sends_a_notice_not_a_password_change(api, db):
    _register(api, "twice@example.com", "the-first-password-1")
    user = User.objects.get()
    password_hash = user.password
    tokens_before = set(AccountToken.objects.values_list("token_hash", flat=True))
    mail.outbox.clear()
    r = api.post(REG, {"email": "Twice@example.com", "password": "the-second-password-2", "name": "X"},
                 format="json")
    assert r.status_code == 202
    user.refresh_from_db()
    assert user.password == password_hash and user.name == "Nia" and not user.email_verified
    assert User.objects.count() == 1
    notice = last_mail_to("twice@example.com")
    assert notice.subject == "You already have an account"
    assert "/forgot-password" in notice.body
    assert "?token=" not in notice.body  # no link that would confirm the password someone else chose
    assert "not been confirmed" in notice.body
    assert set(AccountToken.objects.values_list("token_hash", flat=True)) == tokens_before
    assert AuditEvent.objects.filter(event=EventType.REGISTER_EXISTING, subject=user).exists()


def test_registering_again_on_a_verified_account_offers_sign_in(api, user):
    mail.outbox.clear()
    api.post(REG, {"email": user.email, "password": "the-second-password-2"}, format="json")
    notice = last_mail_to(user.email)
    assert "/login" in notice.body and "/forgot-password" in notice.body
    assert "not been confirmed" not in notice.body


def test_cleanup_deletes_old_tokens_only(db):
    user = UserFactory()
    now = timezone.now()

    def make(name, **times):
        return AccountToken.objects.create(user=user, purpose=TokenPurpose.RESET_PASSWORD, token_hash=hash_token(name),
                                           **times)

    old_expired = make("a", created_at=now - timedelta(days=9), expires_at=now - timedelta(days=8))
    old_used = make("b", created_at=now - timedelta(days=9), expires_at=now + timedelta(days=1),
                    used_at=now - timedelta(days=8))
    recently_expired = make("c", created_at=now - timedelta(days=2), expires_at=now - timedelta(days=1))
    recently_used = make("d", created_at=now - timedelta(days=2), expires_at=now + timedelta(hours=1),
                         used_at=now - timedelta(hours=1))
    live = make("e", expires_at=now + timedelta(hours=1))

    from accounts.tasks import account_tokens_cleanup

    assert account_tokens_cleanup.delay().get() == 2
    remaining = set(AccountToken.objects.values_list("pk", flat=True))
    assert remaining == {recently_expired.pk, recently_used.pk, live.pk}
    assert old_expired.pk not in remaining and old_used.pk not in remaining


def test_account_tokens_cleanup_is_scheduled():
    import config.settings as production_settings

    tasks = {entry["task"] for entry in production_settings.CELERY_BEAT_SCHEDULE.values()}
    assert "accounts.tasks.account_tokens_cleanup" in tasks


# --- concurrency: a conditional UPDATE lets exactly one consumer win -------------------------------------

def _race(monkeypatch, parties, work):
    """Run ``work`` in ``parties`` threads; each has read the token before any of them updates it."""
    barrier = threading.Barrier(parties, timeout=10)
    local = threading.local()
    real_update = AccountTokenQuerySet.update

    def update_after_everyone_has_read(self, **kwargs):
        if not getattr(local, "waited", False):
            local.waited = True
            barrier.wait()
        return real_update(self, **kwargs)

    monkeypatch.setattr(AccountTokenQuerySet, "update", update_after_everyone_has_read)
    results = race(*[work] * parties, expected=(InvalidLinkToken, ExpiredLinkToken), timeout=30)
    return [r.code if isinstance(r, (InvalidLinkToken, ExpiredLinkToken)) else r for r in results]


@pytest.mark.postgres
def test_concurrent_verification_succeeds_once(api, monkeypatch):
    token = _register(api)
    results = _race(monkeypatch, 4, lambda: registration.email_verify(token=token, password="a-long-enough-pass").pk)
    user = User.objects.get()
    assert sorted(map(str, results)) == sorted([str(user.pk)] + ["invalid_token"] * 3)
    assert AuditEvent.objects.filter(event=EventType.EMAIL_VERIFIED).count() == 1
    assert AuditEvent.objects.filter(event=EventType.EMAIL_VERIFICATION_FAILED).count() == 3


@pytest.mark.postgres
def test_concurrent_password_reset_succeeds_once(api, user, monkeypatch):
    token = _forgot(api, user.email)
    passwords = iter([f"racing-password-{i}-xyz" for i in range(4)])
    lock = threading.Lock()

    def work():
        with lock:
            pw = next(passwords)
        password_reset(token=token, password=pw)
        return pw

    results = _race(monkeypatch, 4, work)
    winners = [r for r in results if r != "invalid_token"]
    assert len(winners) == 1 and results.count("invalid_token") == 3
    user.refresh_from_db()
    assert user.check_password(winners[0])
    assert AuditEvent.objects.filter(event=EventType.PASSWORD_RESET_COMPLETED).count() == 1
