"""The audit chain lock under concurrent flows of one account (PostgreSQL): no deadlock, no 5xx,
one unbroken chain."""

from functools import partial

import pytest
from rest_framework.test import APIClient

from audit.chain import chain_verify
from tests.factories import PASSWORD
from tests.support.auth import bearer, login
from tests.support.races import race

pytestmark = pytest.mark.postgres


def test_concurrent_logins_refreshes_and_revocations_keep_one_chain(api, user):
    pairs = [login(api, user.email, deviceId=f"d{i}") for i in range(4)]
    statuses = []

    def run(i):
        client = APIClient()
        for _round in range(3):
            r = client.post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD,
                                                   "deviceId": f"d{i}"}, format="json")
            statuses.append(r.status_code)
            if r.status_code == 200:
                statuses.append(client.post("/api/v1/auth/refresh", {"refreshToken": r.json()["refreshToken"]},
                                            format="json").status_code)
            statuses.append(bearer(pairs[i]).post("/api/v1/auth/sessions/revoke-others").status_code)
            statuses.append(client.post("/api/v1/auth/login", {"email": user.email, "password": "Wrong-123456789"},
                                        format="json").status_code)

    race(*(partial(run, i) for i in range(4)))  # fails the test with any exception a thread raised
    assert all(code < 500 for code in statuses), statuses
    result = chain_verify()
    assert result.ok, result
