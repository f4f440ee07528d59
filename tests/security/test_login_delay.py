"""Progressive delay before the lockout: after the k-th failure of an (account, IP) pair, its next
attempt is refused (429 rate_limited, Retry-After) until last failure + min(BASE * 2**(k-1), MAX),
before any password is checked, without sleeping. Time moves by ageing axes' own records."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db.models import F, Sum
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent, EventType
from security.app_settings import app_settings
from security.lockout import login_delay_remaining
from tests.factories import UserFactory
from tests.hashers import FastArgon2PasswordHasher
from tests.support.agents import CHROME_WINDOWS
from tests.support.auth import login_attempt, page_login
from tests.support.mail import last_mail_to, link_token

WRONG = "Wrong-Password-123456"


@pytest.fixture(autouse=True)
def login_delay(settings):
    """The real schedule (the suite switches it off): 1, 2, 4, 8 s."""
    settings.SECURITY = {**settings.SECURITY, "LOGIN_DELAY_BASE_SECONDS": 1, "LOGIN_DELAY_MAX_SECONDS": 8}


@pytest.fixture
def web():
    return Client(HTTP_USER_AGENT=CHROME_WINDOWS)


@pytest.fixture
def argon2_calls(monkeypatch):
    """Every argon2 verification or hash the suite's hasher does."""
    calls = []
    verify, encode = FastArgon2PasswordHasher.verify, FastArgon2PasswordHasher.encode

    def counting_verify(self, *args, **kwargs):
        calls.append("verify")
        return verify(self, *args, **kwargs)

    def counting_encode(self, *args, **kwargs):
        calls.append("encode")
        return encode(self, *args, **kwargs)

    monkeypatch.setattr(FastArgon2PasswordHasher, "verify", counting_verify)
    monkeypatch.setattr(FastArgon2PasswordHasher, "encode", counting_encode)
    return calls


def age(seconds, email=None):
    """Move the recorded failures ``seconds`` into the past (as if that much time had passed)."""
    attempts = AccessAttempt.objects.all() if email is None else AccessAttempt.objects.filter(username=email)
    attempts.update(attempt_time=F("attempt_time") - timedelta(seconds=seconds))


def failures(email, ip="127.0.0.1"):
    return (AccessAttempt.objects.filter(username=email, ip_address=ip)
            .aggregate(n=Sum("failures_since_start"))["n"] or 0)


def assert_delayed(response, seconds):
    assert response.status_code == 429, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == "rate_limited"
    assert f"{seconds} second" in body["error"]["message"]
    assert response["Retry-After"] == str(seconds)


def test_schedule_doubles_and_caps(settings):
    assert [app_settings.login_delay(k) for k in range(0, 8)] == [0, 1, 2, 4, 8, 8, 8, 8]
    settings.SECURITY = {**settings.SECURITY, "LOGIN_DELAY_BASE_SECONDS": 3, "LOGIN_DELAY_MAX_SECONDS": 10}
    assert [app_settings.login_delay(k) for k in range(1, 5)] == [3, 6, 10, 10]
    assert app_settings.login_delay(10_000) == 10  # no overflow


def test_second_attempt_within_the_delay_is_refused_before_the_password_is_checked(api, user, password,
                                                                                    argon2_calls):
    assert login_attempt(api, user.email, WRONG).status_code == 401
    assert argon2_calls  # a real check happened
    argon2_calls.clear()

    right, wrong = login_attempt(api, user.email, password), login_attempt(api, user.email, WRONG)
    assert_delayed(right, 1)
    assert right.json() == wrong.json() and set(right.headers) == set(wrong.headers)
    assert argon2_calls == []  # no argon2 work at all: the password was never looked at
    assert failures(user.email) == 1  # refused attempts are not failures


def test_after_the_delay_the_answer_is_normal(api, user, password):
    assert login_attempt(api, user.email, WRONG).status_code == 401
    age(1)
    assert login_attempt(api, user.email, WRONG).status_code == 401  # 2nd failure: now 2 s
    age(1)
    assert_delayed(login_attempt(api, user.email, password), 1)  # 1 of 2 s left
    age(1)
    assert login_attempt(api, user.email, password).status_code == 200


def test_delays_grow_and_cap(api, user, settings):
    settings.AXES_FAILURE_LIMIT = 8  # room to see the cap before the lock
    expected = [1, 2, 4, 8, 8, 8, 8]
    for k, delay in enumerate(expected, start=1):
        assert login_attempt(api, user.email, WRONG).status_code == 401, k
        assert_delayed(login_attempt(api, user.email, WRONG), delay)
        age(delay - 1)
        assert_delayed(login_attempt(api, user.email, WRONG), 1)  # still inside, by less than a second
        age(1)
    assert login_attempt(api, user.email, WRONG).json()["error"]["code"] == "account_locked"  # the 8th failure


def test_remaining_time_at_the_edges(api, user):
    login_attempt(api, user.email, WRONG)
    login_attempt(api, user.email, WRONG, ip="203.0.113.9")
    age(1)
    login_attempt(api, user.email, WRONG)  # 2 failures from 127.0.0.1: 2 s after the last
    last = AccessAttempt.objects.filter(ip_address="127.0.0.1").latest("attempt_time").attempt_time
    assert login_delay_remaining(email=user.email, ip="127.0.0.1", now=last) == (2, 2.0)
    assert login_delay_remaining(email=user.email.upper(), ip="127.0.0.1",
                                 now=last + timedelta(seconds=1.5)) == (2, 0.5)  # the email normalised
    assert login_delay_remaining(email=user.email, ip="127.0.0.1", now=last + timedelta(seconds=2)) == (2, 0.0)
    assert login_delay_remaining(email=user.email, ip="203.0.113.9", now=last)[0] == 1


def test_success_resets_the_delay(api, user, password):
    for _ in range(3):
        assert login_attempt(api, user.email, WRONG).status_code == 401
        age(8)
    assert login_attempt(api, user.email, password).status_code == 200
    assert failures(user.email) == 0
    assert login_attempt(api, user.email, WRONG).status_code == 401  # k = 1 again
    assert_delayed(login_attempt(api, user.email, WRONG), 1)


def test_unlock_link_resets_the_delay_too(api, user, password):
    for _ in range(4):
        login_attempt(api, user.email, WRONG)
        age(8)
    login_attempt(api, user.email, WRONG)  # the 5th locks and mails the link
    raw = link_token(last_mail_to(user.email))
    assert api.post("/api/v1/auth/unlock", {"token": raw}, format="json").status_code == 200
    assert login_attempt(api, user.email, password).status_code == 200


def test_a_known_device_is_not_delayed(api, user, password):
    device_token = login_attempt(api, user.email, password).json()["deviceToken"]
    assert login_attempt(api, user.email, WRONG).status_code == 401  # a stranger on the same address
    assert_delayed(login_attempt(api, user.email, password), 1)
    assert login_attempt(api, user.email, WRONG, deviceToken=device_token).status_code == 401  # its own typo
    assert login_attempt(api, user.email, password, deviceToken=device_token).status_code == 200
    # Its failure was not counted, and its success left the stranger's delay alone.
    assert failures(user.email) == 1
    assert_delayed(login_attempt(api, user.email, WRONG), 1)
    # A token for another account exempts nothing.
    other = UserFactory()
    assert login_attempt(api, other.email, WRONG).status_code == 401
    assert_delayed(login_attempt(api, other.email, password, deviceToken=device_token), 1)


def test_other_ip_and_other_account_are_not_delayed(api, user, password):
    assert login_attempt(api, user.email, WRONG, ip="203.0.113.7").status_code == 401
    assert_delayed(login_attempt(api, user.email, password, ip="203.0.113.7"), 1)
    assert login_attempt(api, user.email, password, ip="198.51.100.1").status_code == 200  # the owner elsewhere
    other = UserFactory()
    assert login_attempt(api, other.email, password, ip="203.0.113.7").status_code == 200


def test_keyed_by_the_client_ip_under_the_trusted_proxy_rule(api, user, password, settings):
    settings.AUTH_TRUSTED_PROXY_COUNT = 1
    xff = {"HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    assert login_attempt(api, user.email, WRONG, ip="10.0.0.1", meta=xff).status_code == 401
    assert failures(user.email, ip="203.0.113.7") == 1
    assert_delayed(login_attempt(api, user.email, password, ip="10.0.0.2", meta=xff), 1)  # another proxy, same client
    other = {"HTTP_X_FORWARDED_FOR": "198.51.100.1"}
    assert login_attempt(api, user.email, password, ip="10.0.0.1", meta=other).status_code == 200
    # Without a trusted proxy the header is ignored: it cannot be used to step out of the delay.
    settings.AUTH_TRUSTED_PROXY_COUNT = 0
    assert login_attempt(api, user.email, WRONG).status_code == 401
    assert_delayed(login_attempt(api, user.email, password, meta={"HTTP_X_FORWARDED_FOR": "192.0.2.1"}), 1)


def test_unknown_email_is_delayed_the_same_way(api, user):
    assert login_attempt(api, "nobody@example.com", WRONG).status_code == 401
    assert login_attempt(api, user.email, WRONG).status_code == 401
    unknown, known = login_attempt(api, "nobody@example.com", WRONG), login_attempt(api, user.email, WRONG)
    assert_delayed(unknown, 1)
    assert unknown.json() == known.json() and set(unknown.headers) == set(known.headers)


def test_delayed_attempts_do_not_count_towards_the_lockout_nor_extend_it(api, user, password):
    for _ in range(4):
        assert login_attempt(api, user.email, WRONG).status_code == 401
        for _ in range(5):  # hammering inside the delay
            assert login_attempt(api, user.email, WRONG).json()["error"]["code"] == "rate_limited"
        age(8)
    assert failures(user.email) == 4  # 4 real failures, 20 refused attempts not counted
    locked = login_attempt(api, user.email, WRONG)  # the 5th real failure locks
    assert locked.json()["error"]["code"] == "account_locked" and 890 <= int(locked["Retry-After"]) <= 900
    # A locked pair answers account_locked (not the delay), right password or wrong, and stays 15 min.
    for attempt in (password, WRONG):
        again = login_attempt(api, user.email, attempt)
        assert again.json()["error"]["code"] == "account_locked" and int(again["Retry-After"]) <= 900
    assert failures(user.email) == 5


def test_refused_attempts_are_audited_not_as_failures(api, user, password):
    login_attempt(api, user.email, WRONG, ua="curl/8")
    failed_before = AuditEvent.objects.filter(event=EventType.LOGIN_FAILED).count()
    login_attempt(api, user.email, password, ua="curl/8")
    row = AuditEvent.objects.get(event=EventType.RATE_LIMITED)
    assert (row.subject_id, row.success, row.ip_address, row.user_agent) == (user.pk, False, "127.0.0.1", "curl/8")
    assert row.context["scope"] == "login_delay"
    assert (row.context["failures"], row.context["delay"], row.context["retry_after"]) == (1, 1, 1)
    assert AuditEvent.objects.filter(event=EventType.LOGIN_FAILED).count() == failed_before
    assert not AuditEvent.objects.filter(event=EventType.LOGIN_SUCCEEDED).exists()


def test_login_page_answers_429_with_the_wait(user, password, web):
    assert page_login(web, user.email, password=WRONG).status_code == 200
    delayed = page_login(web, user.email)
    assert delayed.status_code == 429 and delayed["Retry-After"] == "1"
    assert "Try again in 1 second." in delayed.content.decode()
    assert AuditEvent.objects.filter(event=EventType.RATE_LIMITED, context__scope="login_delay").count() == 1
    age(1)
    response = page_login(web, user.email)
    assert response.status_code == 302


@pytest.mark.parametrize("setting", ["LOGIN_DELAY_BASE_SECONDS", "LOGIN_DELAY_MAX_SECONDS"])
def test_zero_turns_the_delay_off(api, user, settings, setting, django_assert_max_num_queries):
    settings.SECURITY = {**settings.SECURITY, setting: 0}
    responses = [login_attempt(api, user.email, WRONG) for _ in range(5)]
    assert [r.status_code for r in responses] == [401] * 4 + [429]
    assert responses[-1].json()["error"]["code"] == "account_locked"
    assert login_delay_remaining(email=user.email, ip="127.0.0.1") == (0, 0.0)
    with django_assert_max_num_queries(0):
        login_delay_remaining(email=user.email, ip="127.0.0.1", now=timezone.now())
