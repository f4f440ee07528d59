"""The statement budget of a password login (issue 15, docs/benchmarks.md "Statements per request"):
at most 8 SQL statements, BEGIN and COMMIT included, for a verified user without a second factor
who does not replace a session of the same deviceId, from a device seen before and from a new one.

Counted on real transactions (``transaction=True``: BEGIN and COMMIT are sent, and what runs after
the commit runs), with everything Django sends captured (Django logs BEGIN, COMMIT and ROLLBACK
with the statements: CaptureQueriesContext sees them; the test checks that it does). Before issue 15
this login was 21 statements.
"""

from __future__ import annotations

import jwt
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from orgs.models import Membership, Organization, OrgRole
from security.models import KnownDevice, SeenDevice
from sessions_app.models import DeviceSession
from tests.factories import UserFactory
from tests.support.auth import login

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN_MAX_STATEMENTS = 8
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


@pytest.fixture
def steady(settings):
    """As a worker that has been serving a while: the signing key loaded (a warm-up login), no key check
    due, the audit rows sealed by the beat task (as in production) rather than after each commit."""
    settings.IDENTITY = {**settings.IDENTITY, "KEY_GENERATION_CHECK_SECONDS": 3600}
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}
    login(APIClient(), UserFactory().email)


def _statements(client, email, **body) -> tuple[dict, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        data = login(client, email, **body)
    return data, [q["sql"] for q in captured.captured_queries]


def _within_budget(sql: list[str]) -> None:
    if connection.vendor != "postgresql":  # the budget is PostgreSQL's (the seen-device upsert is one CTE there)
        return
    listing = "\n".join(f"{i}. {s[:160]}" for i, s in enumerate(sql, 1))
    assert len(sql) <= LOGIN_MAX_STATEMENTS, f"{len(sql)} statements:\n{listing}"
    assert sql[0].startswith("SELECT"), listing  # the account and its lockout state, in one
    assert [s for s in sql if s.startswith(TRANSACTION_CONTROL)] == ["BEGIN", "COMMIT"], listing


def test_a_login_from_a_device_seen_before_is_at_most_8_statements(steady):
    user = UserFactory()
    client = APIClient(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0")
    login(client, user.email)
    data, sql = _statements(client, user.email)
    _within_budget(sql)
    assert SeenDevice.objects.filter(user=user).count() == 1  # the same (device, network): updated
    assert KnownDevice.objects.filter(user=user).count() == 2  # each login answers a deviceToken
    assert data["deviceToken"]
    assert AuditEvent.objects.filter(event=EventType.LOGIN_SUCCEEDED, actor=user).count() == 2


def test_a_login_from_a_new_device_is_at_most_8_statements(steady):
    user = UserFactory()
    client = APIClient()
    login(client, user.email)
    data, sql = _statements(client, user.email, deviceId="tablet-1")
    _within_budget(sql)
    assert SeenDevice.objects.filter(user=user).count() == 2  # a new device on a known network: no mail
    assert DeviceSession.objects.get(pk=data["session"]["id"]).device_id == "tablet-1"


def test_the_organization_used_last_comes_from_the_same_lookup(steady):
    user = UserFactory()
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=user, organization=org, role=OrgRole.ADMIN, last_active_at=timezone.now())
    login(APIClient(), user.email)
    data, sql = _statements(APIClient(), user.email)
    _within_budget(sql)
    claims = jwt.decode(data["accessToken"], options={"verify_signature": False})
    assert (claims["org"], claims["orgRole"]) == (str(org.pk), OrgRole.ADMIN)
    assert DeviceSession.objects.get(pk=data["session"]["id"]).active_organization_id == org.pk


def test_a_login_that_follows_failures_resets_them_and_may_cost_more(steady):
    """The reset on success runs only when the pair has records: then it costs its own statements."""
    from axes.models import AccessAttempt

    user = UserFactory()
    client = APIClient()
    assert client.post("/api/v1/auth/login", {"email": user.email, "password": "wrong-password-1"},
                       format="json").status_code == 401
    assert AccessAttempt.objects.filter(username=user.email).exists()
    _data, sql = _statements(client, user.email)
    assert not AccessAttempt.objects.filter(username=user.email).exists()
    assert any(s.startswith("DELETE") and "axes_accessattempt" in s for s in sql)
