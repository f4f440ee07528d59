"""The last owner under concurrency: real HTTP requests racing on PostgreSQL.

The live server answers each request in its own thread with its own database connection; a barrier
lines the client threads up so the requests meet in the database. Every service that demotes or
removes an owner locks the organization row and counts owners inside the lock, so whatever the
interleaving, one request wins and the organization keeps an owner.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from orgs.models import Membership, Organization, OrgRole
from sessions_app.services import session_create
from tests.factories import UserFactory

pytestmark = pytest.mark.postgres

ROUNDS = 5
# The live server's middleware was built with the production posture (HTTPS redirect) before any
# test's settings applied; requests arrive as they would through a TLS-terminating proxy.
HEADERS = {"Content-Type": "application/json", "X-Forwarded-Proto": "https"}


@pytest.fixture(autouse=True)
def _behind_tls_proxy(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def _send(method, url, token, body, barrier, results, index):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={**HEADERS, "Authorization": f"Bearer {token}"})
    barrier.wait()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            results[index] = (response.status, response.read())
    except urllib.error.HTTPError as error:
        results[index] = (error.code, json.loads(error.read())["error"]["code"])
    except Exception as error:  # noqa: BLE001 - reported by the assertion below
        results[index] = ("exception", repr(error))


def race(requests):
    """Send ``[(method, url, token, body), ...]`` at the same moment; return [(status, body or code)]."""
    barrier = threading.Barrier(len(requests))
    results = [None] * len(requests)
    threads = [threading.Thread(target=_send, args=(*request, barrier, results, i))
               for i, request in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(r is not None and r[0] != "exception" for r in results), results
    return results


def two_owners(n):
    a, b = UserFactory(), UserFactory()
    org = Organization.objects.create(name=f"Race {n}", slug=f"race-{n}")
    for user in (a, b):
        Membership.objects.create(user=user, organization=org, role=OrgRole.OWNER)
    return org, (a, session_create(user=a).access_token), (b, session_create(user=b).access_token)


def owners(org):
    return Membership.objects.filter(organization=org, role=OrgRole.OWNER).count()


def test_two_owners_demoting_each_other_at_once_leave_one_owner(live_server):
    for n in range(ROUNDS):
        org, (a, token_a), (b, token_b) = two_owners(n)
        base = f"{live_server.url}/api/v1/orgs/{org.pk}/members/"
        results = race([("PATCH", f"{base}{b.pk}", token_a, {"role": "member"}),
                        ("PATCH", f"{base}{a.pk}", token_b, {"role": "member"})])
        statuses = sorted(status for status, _ in results)
        assert statuses[0] == 200 and statuses[1] in (403, 409), results  # exactly one succeeds
        assert owners(org) == 1


def test_two_owners_removing_each_other_at_once_leave_one_owner(live_server):
    for n in range(ROUNDS):
        org, (a, token_a), (b, token_b) = two_owners(n)
        base = f"{live_server.url}/api/v1/orgs/{org.pk}/members/"
        results = race([("DELETE", f"{base}{b.pk}", token_a, None), ("DELETE", f"{base}{a.pk}", token_b, None)])
        statuses = sorted(status for status, _ in results)
        assert statuses[0] == 204 and statuses[1] in (404, 409), results  # the loser is no longer a member
        assert owners(org) == 1 and Membership.objects.filter(organization=org).count() == 1


def test_two_owners_leaving_at_once_leave_one_owner(live_server):
    for n in range(ROUNDS):
        org, (a, token_a), (b, token_b) = two_owners(n)
        base = f"{live_server.url}/api/v1/orgs/{org.pk}/members/"
        results = race([("DELETE", f"{base}{a.pk}", token_a, None), ("DELETE", f"{base}{b.pk}", token_b, None)])
        assert sorted(results) == [(204, b""), (409, "last_owner")], results
        assert owners(org) == 1


def test_demotion_racing_a_removal_leaves_one_owner(live_server):
    for n in range(ROUNDS):
        org, (a, token_a), (b, token_b) = two_owners(n)
        base = f"{live_server.url}/api/v1/orgs/{org.pk}/members/"
        results = race([("PATCH", f"{base}{a.pk}", token_a, {"role": "admin"}),  # a steps down
                        ("DELETE", f"{base}{a.pk}", token_b, None)])  # b removes a
        assert sum(status in (200, 204) for status, _ in results) >= 1, results
        assert owners(org) == 1
        assert Membership.objects.filter(organization=org, user=b, role=OrgRole.OWNER).exists()
