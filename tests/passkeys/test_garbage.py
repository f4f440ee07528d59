"""Garbage in every part of a passkey answer is never a 5xx, on every endpoint that takes one
(registration, passwordless sign-in, second factor, step-up): a refusal in the envelope, or (garbage in a
part nobody reads, such as clientExtensionResults) an answer as if it were absent."""

from __future__ import annotations

import copy

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.mfa.support import MFA, VERIFY, bearer_for, password_step
from tests.passkeys.test_passkeys_api import LOGIN_OPTIONS, LOGIN_VERIFY, PASSKEYS, register
from tests.support.errors import error_of
from tests.support.webauthn import SoftAuthenticator, b64

GARBAGE = [None, 0, -1, 2**70, "", "!!!", "AA", "A" * 5000, [], ["x"], {}, {"a": 1}, True, 1.5, b64(b"\x00" * 70)]
PARTS = ["id", "rawId", "type", "response", "authenticatorAttachment", "clientExtensionResults"]
RESPONSE_PARTS = ["clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle",
                  "transports"]


def variants(good: dict):
    for part in PARTS:
        for value in GARBAGE:
            bad = copy.deepcopy(good)
            bad[part] = value
            yield bad
    for part in RESPONSE_PARTS:
        for value in GARBAGE:
            bad = copy.deepcopy(good)
            bad["response"][part] = value
            yield bad


def four_xx(response):
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code >= 400:
        error_of(response, response.status_code)


@pytest.mark.parametrize("where", ["register", "login", "second_factor", "step_up"])
def test_garbage_answers_are_4xx(db, settings, where):
    settings.SECURITY = {**getattr(settings, "SECURITY", {}), "SECOND_FACTOR_FAILURES": 10_000}
    user = UserFactory()
    client = bearer_for(user)
    authenticator, _ = register(user, client)
    if where == "register":
        for bad in variants(SoftAuthenticator().create(client.post(f"{PASSKEYS}/register/options").json())):
            client.post(f"{PASSKEYS}/register/options")
            four_xx(client.post(f"{PASSKEYS}/register/verify", {"credential": bad}, format="json"))
        return
    anonymous = APIClient()
    for bad in variants(authenticator.get(anonymous.post(LOGIN_OPTIONS).json()["options"])):
        if where == "login":
            ceremony = anonymous.post(LOGIN_OPTIONS).json()
            four_xx(anonymous.post(LOGIN_VERIFY, {"ceremonyId": ceremony["ceremonyId"], "credential": bad},
                                   format="json"))
        elif where == "second_factor":
            token = password_step(anonymous, user)["mfaToken"]  # a new sign-in each time: 5 tries per token
            options = anonymous.post(f"{MFA}/passkey/options", {"mfaToken": token}, format="json")
            assert options.status_code == 200, options.content
            ceremony = options.json()
            response = anonymous.post(VERIFY, {"mfaToken": token, "ceremonyId": ceremony["ceremonyId"],
                                               "credential": bad}, format="json")
            four_xx(response)
        else:
            ceremony = client.post(f"{PASSKEYS}/reauthenticate/options").json()
            four_xx(client.post("/api/v1/auth/reauthenticate", {"ceremonyId": ceremony["ceremonyId"],
                                                                "credential": bad}, format="json"))
