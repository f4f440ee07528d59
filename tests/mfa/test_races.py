"""Two-factor under concurrent requests on PostgreSQL (threads with connections of their own): a
recovery code sent 30 times at the same instant signs in once; one TOTP code answering two sign-ins
signs in once; one challenge answered twice at once signs in once."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from flows.login import second_factor_verify, user_login
from mfa.models import Channel, MfaChallenge, RecoveryCode
from mfa.services import MfaCodeInvalid, MfaTokenInvalid, challenge_open
from security.lockout import AccountLocked
from sessions_app.models import DeviceSession
from tests.factories import PASSWORD, UserFactory
from tests.mfa.support import code_at, enrol
from tests.support.races import race

pytestmark = pytest.mark.postgres
# A spent code is a wrong code: 29 of them at once can use up the account's budget of wrong codes (10 per
# 15 minutes), and the calls that check the budget after that are refused as locked. Either way: refused.
REFUSED = (MfaCodeInvalid, MfaTokenInvalid, AccountLocked)


def _challenges(user, n: int) -> list[str]:
    user.refresh_from_db()
    return [challenge_open(user=user, channel=Channel.API, amr=["pwd"]) for _ in range(n)]


def _sessions(user) -> int:
    return DeviceSession.objects.filter(user=user, revoked_at__isnull=True).count()


def test_one_recovery_code_sent_30_times_at_once_signs_in_once():
    user = UserFactory()
    _, codes = enrol(user)
    before = _sessions(user)
    tokens = _challenges(user, 30)
    results = race(*[lambda t=t: second_factor_verify(token=t, recovery_code=codes[0]) for t in tokens],
                   expected=REFUSED)
    signed_in = [r for r in results if not isinstance(r, Exception)]
    assert len(signed_in) == 1
    assert all(isinstance(r, MfaCodeInvalid | AccountLocked) for r in results if isinstance(r, Exception))
    assert _sessions(user) == before + 1
    assert RecoveryCode.objects.filter(user=user, used_at__isnull=False).count() == 1


def test_one_totp_code_answering_two_sign_ins_at_once_signs_in_once():
    user = UserFactory()
    secret, _ = enrol(user)
    code = code_at(secret)
    tokens = _challenges(user, 8)
    results = race(*[lambda t=t: second_factor_verify(token=t, code=code) for t in tokens], expected=REFUSED)
    assert len([r for r in results if not isinstance(r, Exception)]) == 1


def test_one_challenge_answered_twice_at_once_signs_in_once():
    user = UserFactory()
    secret, codes = enrol(user)
    [token] = _challenges(user, 1)
    results = race(lambda: second_factor_verify(token=token, code=code_at(secret)),
                   lambda: second_factor_verify(token=token, recovery_code=codes[1]), expected=REFUSED)
    assert len([r for r in results if not isinstance(r, Exception)]) == 1
    assert MfaChallenge.objects.get().used_at is not None


def test_the_password_step_opens_no_session_even_under_load():
    user = UserFactory()
    enrol(user)
    before = _sessions(user)
    requests = [RequestFactory().post("/api/v1/auth/login", REMOTE_ADDR=f"203.0.113.{i}") for i in range(4)]
    results = race(*[lambda r=r: user_login(email=user.email, password=PASSWORD, request=r) for r in requests])
    assert all(r.__class__.__name__ == "SecondFactorRequired" for r in results)
    assert _sessions(user) == before and MfaChallenge.objects.filter(user=user).count() == 4
