"""The audit chain lock under concurrent flows of one account (PostgreSQL): no deadlock, no 5xx,
one unbroken chain."""

import threading

import pytest
from django.db import connections
from rest_framework.test import APIClient

from audit.chain import chain_verify
from tests.conftest import login
from tests.factories import PASSWORD

pytestmark = pytest.mark.postgres


def test_concurrent_logins_refreshes_and_revocations_keep_one_chain(api, user):
    pairs = [login(api, user.email, deviceId=f"d{i}") for i in range(4)]
    statuses, errors = [], []

    def run(i):
        client = APIClient()
        try:
            for round_ in range(3):
                r = client.post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD,
                                                       "deviceId": f"d{i}"}, format="json")
                statuses.append(r.status_code)
                if r.status_code == 200:
                    statuses.append(client.post("/api/v1/auth/refresh", {"refreshToken": r.json()["refreshToken"]},
                                                format="json").status_code)
                authed = APIClient()
                authed.credentials(HTTP_AUTHORIZATION=f"Bearer {pairs[i]['accessToken']}")
                statuses.append(authed.post("/api/v1/auth/sessions/revoke-others").status_code)
                statuses.append(client.post("/api/v1/auth/login", {"email": user.email, "password": "Wrong-123456789"},
                                            format="json").status_code)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(code < 500 for code in statuses), statuses
    result = chain_verify()
    assert result.ok, result
