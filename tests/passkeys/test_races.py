"""Concurrent answers (PostgreSQL, threads with their own connections): one challenge answered twice at
the same moment signs in once; one counter value presented by two challenges at once passes once."""

from __future__ import annotations

import pytest

from flows.login import passkey_login
from passkeys import services
from passkeys.services import PasskeyInvalid
from sessions_app.models import DeviceSession
from tests.factories import UserFactory
from tests.passkeys.test_passkeys_api import register
from tests.support.races import race

pytestmark = pytest.mark.postgres


def test_one_challenge_answered_twice_at_once_signs_in_once():
    user = UserFactory()
    authenticator, _ = register(user)
    ceremony = services.authentication_options()
    credential = authenticator.get(ceremony.options)
    results = race(*[lambda: passkey_login(ceremony_id=ceremony.ceremony_id, credential=credential)] * 4,
                   expected=(PasskeyInvalid,))
    assert sum(not isinstance(r, PasskeyInvalid) for r in results) == 1
    assert sum("hwk" in row.amr for row in DeviceSession.objects.filter(user=user)) == 1


def test_one_counter_value_on_two_challenges_at_once_passes_once():
    user = UserFactory()
    authenticator, _ = register(user)
    first, second = services.authentication_options(), services.authentication_options()
    answers = [(first, authenticator.get(first.options, counter=7)),
               (second, authenticator.get(second.options, counter=7))]
    results = race(*[lambda c=c, a=a: passkey_login(ceremony_id=c.ceremony_id, credential=a) for c, a in answers],
                   expected=(PasskeyInvalid,))
    assert sum(not isinstance(r, PasskeyInvalid) for r in results) == 1
