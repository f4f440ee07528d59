"""Fuzzing from the OpenAPI document (issue 16): schemathesis generates requests for every operation of
GET /api/v1/schema/ and sends them in-process (WSGI), anonymously and as a signed-in user; every answer
must be no 5xx, documented (status code, content type, body schema) and, for a 4xx, the error envelope.

Object-level authorization across users: the signed-in user (A) also sends every operation that has
path parameters with the ids of another user's (B's) session, organization, member and invitations
filled in; none of those may succeed, and B's objects are checked intact at the end.

Bounded for CI: a fixed seed, EXAMPLES per operation and generation mode (40 to 70 s for the three
tests on this 2-core machine, SQLite to PostgreSQL under load), and a time budget per test (once it
is spent, the remaining operations still run, with a single example each). Rate limits are
raised for these identities only (the suite's conftest does it; ``fuzz_limits`` says so again here);
tests/security proves the limits themselves.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.views import SchemaApi
from orgs.models import Invitation, Membership, Organization
from security.app_settings import DEFAULT_RATE_LIMITS
from sessions_app.models import DeviceSession
from sessions_app.services import session_create
from tests.factories import UserFactory

SEED = 16
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 10, schemathesis.GenerationMode.NEGATIVE: 6}
BUDGET_SECONDS = 20  # per fuzz() call; about 10 s each on an idle 2-core machine (SQLite)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture
def fuzz_limits(settings):
    """Limits out of the way for the fuzzing identities (every request comes from one test address)."""
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": dict.fromkeys(DEFAULT_RATE_LIMITS, "1000000/m"),
                         "LOGIN_DELAY_BASE_SECONDS": 0}
    settings.AXES_FAILURE_LIMIT = 1000000


@pytest.fixture
def api_schema(fuzz_limits):
    SchemaApi.cache_clear()
    app = get_wsgi_application()  # after the settings fixture: the middleware reads it when built
    # As Django's test client does: the request signals must not close the test's connection (it is inside
    # the test's transaction; PostgreSQL would answer "the connection is closed" to the next query).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", app)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def envelope_problem(response) -> str | None:
    """None when a 4xx body is exactly the contract's error envelope."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return "not JSON"
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return f"not the envelope: {str(body)[:200]}"
    error = body["error"]
    if not {"code", "message"} <= set(error) <= {"code", "message", "fields"}:
        return f"envelope keys: {sorted(error)}"
    if not isinstance(error["code"], str) or not isinstance(error["message"], str):
        return "code/message not strings"
    return None


def fuzz(schema, *, headers: Callable[[], dict], path_parameters: Callable[[object], dict | None] = lambda op: None,
         allowed: Callable[[object, object], str | None] = lambda case, response: None,
         statuses: Counter | None = None) -> list[str]:
    """Every operation, both generation modes; returns the failures (operation, mode, what). ``statuses``
    counts (method, path, status) of the answers."""
    failures: list[str] = []
    statuses = Counter() if statuses is None else statuses
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        fixed = path_parameters(operation)
        if fixed is False:
            continue
        for mode, examples in EXAMPLES.items():
            if time.monotonic() - started > BUDGET_SECONDS:
                examples = 1

            @hypothesis.seed(SEED)
            @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                                 phases=[Phase.explicit, Phase.generate], print_blob=False,
                                 suppress_health_check=list(HealthCheck))
            @hypothesis.given(case=operation.as_strategy(mode, path_parameters=fixed or None))
            def one(case):
                response = case.call(headers=headers())
                statuses[(case.method, case.path, response.status_code)] += 1
                case.validate_response(response, checks=CHECKS)
                if 400 <= response.status_code < 500:
                    problem = envelope_problem(response)
                    assert problem is None, f"{response.status_code}: {problem}"
                problem = allowed(case, response)
                assert problem is None, problem

            try:
                one()
            except hypothesis.errors.Unsatisfiable:
                pass  # negative mode for an operation with nothing to make invalid (no parameters, no body)
            except Exception as exc:  # noqa: BLE001 - collected, reported together below
                failures.append(f"{operation.method.upper()} {operation.path} [{mode.value}]: "
                                f"{type(exc).__name__}: {str(exc)[:1500]}")
    return failures


def test_anonymous(api_schema):
    failures = fuzz(api_schema, headers=dict)
    assert not failures, "\n\n".join(failures)


@pytest.fixture
def two_users(db):
    """A and B, each with a session and an organization; B's organization invited someone, and a third
    user's organization invited B."""
    from orgs.services import invitation_create, organization_create

    a, b, carol = UserFactory(), UserFactory(), UserFactory()
    a_org = organization_create(user=a, name="A's org").organization
    b_org = organization_create(user=b, name="B's org").organization
    carol_org = organization_create(user=carol, name="Carol's org").organization
    Membership.objects.create(user=carol, organization=b_org, role="member")
    from_b = invitation_create(user=b, organization_id=b_org.pk, email="dave@example.org", role="member")
    to_b = invitation_create(user=carol, organization_id=carol_org.pk, email=b.email, role="member")
    b_session = session_create(user=b).session
    return {"a": a, "b": b, "carol": carol, "a_org": a_org, "b_org": b_org, "from_b": from_b, "to_b": to_b,
            "b_session": b_session}


def _b_ids(objects) -> dict[str, str]:
    return {"session_id": str(objects["b_session"].pk), "org_id": str(objects["b_org"].pk),
            "user_id": str(objects["carol"].pk), "invitation_id": str(objects["from_b"].pk)}


def test_signed_in(api_schema, two_users):
    a = two_users["a"]

    def headers():
        return {"Authorization": f"Bearer {session_create(user=a).access_token}"}

    statuses = Counter()
    failures = fuzz(api_schema, headers=headers, statuses=statuses)
    assert not failures, "\n\n".join(failures)
    # The signed-in calls were signed in: the user's own reads succeed.
    assert statuses[("GET", "/api/v1/auth/me", 200)] and statuses[("GET", "/api/v1/auth/sessions/active", 200)]


def test_another_users_objects(api_schema, two_users):
    """A sends every operation with path parameters, the ids naming B's objects: never a success."""
    a, ids = two_users["a"], _b_ids(two_users)

    def headers():
        return {"Authorization": f"Bearer {session_create(user=a).access_token}"}

    def path_parameters(operation):
        names = [p.name for p in operation.path_parameters]
        if not names:
            return False  # nothing to point at B's objects
        fixed = {name: ids[name] for name in names if name in ids}
        if "/orgs/invitations/" in operation.path:
            fixed["invitation_id"] = str(two_users["to_b"].pk)  # addressed to B, not to A
        return fixed

    def allowed(case, response):
        if response.status_code < 400:
            return f"{case.method} {case.formatted_path} answered {response.status_code} for B's objects"
        return None

    failures = fuzz(api_schema, headers=headers, path_parameters=path_parameters, allowed=allowed)
    assert not failures, "\n\n".join(failures)
    b_session = DeviceSession.objects.get(pk=two_users["b_session"].pk)
    assert b_session.revoked_at is None
    assert Organization.objects.filter(pk=two_users["b_org"].pk, name="B's org").exists()
    assert Membership.objects.filter(organization=two_users["b_org"], user=two_users["carol"], role="member").exists()
    assert not Membership.objects.filter(user=a, organization=two_users["b_org"]).exists()
    for invitation in (two_users["from_b"], two_users["to_b"]):
        invitation = Invitation.objects.get(pk=invitation.pk)
        assert invitation.accepted_at is None and invitation.revoked_at is None
