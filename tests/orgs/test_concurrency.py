"""The last owner under concurrency: real HTTP requests racing on PostgreSQL.

The live server answers each request in its own thread with its own database connection; a barrier
lines the client threads up so the requests meet in the database. Every service that demotes or
removes an owner locks the organization row and counts owners inside the lock, so whatever the
interleaving, one request wins and the organization keeps an owner.
"""

from __future__ import annotations

import pytest

from orgs.models import Membership, Organization, OrgRole
from sessions_app.services import session_create
from tests.factories import UserFactory
from tests.support.races import http_race

pytestmark = pytest.mark.postgres

ROUNDS = 5


@pytest.fixture(autouse=True)
def _behind_tls_proxy(settings):
    # The live server's middleware was built with the production posture (HTTPS redirect) before any
    # test's settings applied; the race harness sends requests as through a TLS-terminating proxy.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


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
        results = http_race([("PATCH", f"{base}{b.pk}", token_a, {"role": "member"}),
                             ("PATCH", f"{base}{a.pk}", token_b, {"role": "member"})])
        statuses = sorted(status for status, _ in results)
        assert statuses[0] == 200 and statuses[1] in (403, 409), results  # exactly one succeeds
        assert owners(org) == 1


def test_two_owners_removing_each_other_at_once_leave_one_owner(live_server):
    for n in range(ROUNDS):
        org, (a, token_a), (b, token_b) = two_owners(n)
        base = f"{live_server.url}/api/v1/orgs/{org.pk}/members/"
        results = http_race([("DELETE", f"{base}{b.pk}", token_a, None), ("DELETE", f"{base}{a.pk}", token_b, None)])
        statuses = sorted(status for status, _ in results)
        assert statuses[0] == 204 and statuses[1] in (404, 409), results  # the loser is no longer a member
        assert owners(org) == 1 and Membership.objects.filter(organization=org).count() == 1


def test_two_owners_leaving_at_once_leave_one_owner(live_server):
    for n in range(ROUNDS):
        org, (a, token_a), (b, token_b) = two_owners(n)
        base = f"{live_server.url}/api/v1/orgs/{org.pk}/members/"
        results = http_race([("DELETE", f"{base}{a.pk}", token_a, None), ("DELETE", f"{base}{b.pk}", token_b, None)])
        assert sorted(r.summary for r in results) == [(204, None), (409, "last_owner")], results
        assert owners(org) == 1


def test_demotion_racing_a_removal_leaves_one_owner(live_server):
    for n in range(ROUNDS):
        org, (a, token_a), (b, token_b) = two_owners(n)
        base = f"{live_server.url}/api/v1/orgs/{org.pk}/members/"
        results = http_race([("PATCH", f"{base}{a.pk}", token_a, {"role": "admin"}),  # a steps down
                             ("DELETE", f"{base}{a.pk}", token_b, None)])  # b removes a
        assert sum(status in (200, 204) for status, _ in results) >= 1, results
        assert owners(org) == 1
        assert Membership.objects.filter(organization=org, user=b, role=OrgRole.OWNER).exists()
