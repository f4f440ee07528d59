"""Two-factor test helpers: enrol a user (through the API), codes of a given time step."""

from __future__ import annotations

import time

import pyotp
from rest_framework.test import APIClient

from mfa.models import TotpDevice
from mfa.services import totp_secret
from sessions_app.services import session_create
from tests.factories import PASSWORD
from tests.support.paths import LOGIN

MFA = "/api/v1/auth/mfa"
VERIFY = f"{MFA}/verify"


def code_at(secret: str, offset_steps: int = 0) -> str:
    """The code of the time step ``offset_steps`` away from now (one step of drift is accepted)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


def away_from_step_end(margin: float = 8.0) -> None:
    """Wait for the next 30 s step when the current one ends within ``margin`` seconds, so a test that
    types the code of the step before now (accepted with one step of drift) is not answered after two
    step changes on a slow machine."""
    left = 30 - time.time() % 30
    if left < margin:
        time.sleep(left + 0.05)


def bearer_for(user) -> APIClient:
    """A fresh session of ``user`` (fresh enough for step-up)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {session_create(user=user).access_token}")
    return client


def enrol(user, client: APIClient | None = None) -> tuple[str, list[str]]:
    """Turn TOTP on for ``user`` through the API; returns (secret, recovery codes). The code used to
    confirm is the one of the step before now, so ``code_at(secret)`` and later still work."""
    client = client or bearer_for(user)
    away_from_step_end()
    setup = client.post(f"{MFA}/totp/setup")
    assert setup.status_code == 200, setup.content
    secret = setup.json()["secret"]
    confirm = client.post(f"{MFA}/totp/confirm", {"code": code_at(secret, -1)}, format="json")
    assert confirm.status_code == 200, confirm.content
    return secret, confirm.json()["recoveryCodes"]


def secret_of(user) -> str:
    return totp_secret(TotpDevice.objects.get(user=user))


def password_step(client: APIClient, user, **body) -> dict:
    """The login's first step for a user with two-factor: the mfaRequired answer."""
    response = client.post(LOGIN, {"email": user.email, "password": PASSWORD, **body}, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data.get("mfaRequired") is True, data
    return data
