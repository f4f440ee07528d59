"""sessions_app.policy.session_refusal, the one rule for "is this session usable now": a pure table test of
its order. Each row breaks its own check and every later one; the first broken check must answer."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from datetime import UTC

import pytest

from accounts.models import User
from orgs.models import Organization
from sessions_app.models import DeviceSession, RevokeReason
from sessions_app.policy import Refusal, session_fresh_until, session_refusal

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GLOBAL_IDLE = timedelta(minutes=30)
ORG_IDLE, ORG_LIFETIME = timedelta(minutes=15), timedelta(hours=8)

# What breaking each check does to a live session (applied cumulatively from the row's check on).
BREAK = {
    "revoked": {"revoked_at": NOW - timedelta(minutes=1)},
    "expired": {"expires_at": NOW - timedelta(seconds=1)},
    "user_inactive": {"user_active": False},
    "idle_timeout": {"last_activity_at": NOW - 2 * GLOBAL_IDLE},
    "organization_max_lifetime": {"created_at": NOW - ORG_LIFETIME - timedelta(seconds=1)},
    "organization_idle_timeout": {"last_activity_at": NOW - ORG_IDLE - timedelta(seconds=1)},
}
ORDER = list(BREAK)
EXPECTED = {
    "revoked": ("session_revoked", None),
    "expired": ("session_expired", None),
    "user_inactive": ("session_revoked", None),
    "idle_timeout": ("session_revoked", RevokeReason.IDLE_TIMEOUT),
    "organization_max_lifetime": ("session_expired", RevokeReason.ORGANIZATION_POLICY),
    "organization_idle_timeout": ("session_expired", RevokeReason.ORGANIZATION_POLICY),
}


@pytest.fixture(autouse=True)
def _global_idle(settings):
    settings.SESSIONS = {**getattr(settings, "SESSIONS", {}), "IDLE_TIMEOUT_MINUTES": 30}


def make_session(*, organization=True, user_active=True, **fields) -> DeviceSession:
    """An unsaved, live session (no query anywhere): signed in an hour ago, active a minute ago."""
    org = Organization(id=uuid.uuid4(), name="Acme", slug="acme", idle_timeout_seconds=int(ORG_IDLE.total_seconds()),
                       max_session_lifetime_seconds=int(ORG_LIFETIME.total_seconds())) if organization else None
    values = {"created_at": NOW - timedelta(hours=1), "last_activity_at": NOW - timedelta(minutes=1),
              "expires_at": NOW + timedelta(days=1), "absolute_expires_at": NOW + timedelta(days=30),
              "revoked_at": None, **fields}
    return DeviceSession(id=uuid.uuid4(), user=User(id=uuid.uuid4(), email="a@example.com", is_active=user_active),
                         active_organization=org, **values)


def broken_from(check: str) -> DeviceSession:
    changes: dict = {}
    for name in ORDER[ORDER.index(check):]:
        for key, value in BREAK[name].items():
            changes.setdefault(key, value)  # an earlier check's value wins (it breaks the later one too)
    return make_session(**changes)


def test_no_row_is_session_missing():
    refusal = session_refusal(None, NOW)
    assert refusal == Refusal("session_missing", "session_revoked", refusal.message)
    assert refusal.revoke_as is None and refusal.context == {}


def test_a_live_session_is_usable():
    assert session_refusal(make_session(), NOW) is None


@pytest.mark.parametrize("check", ORDER)
def test_the_first_broken_check_answers(check):
    session = broken_from(check)
    refusal = session_refusal(session, NOW)
    code, revoke_as = EXPECTED[check]
    assert (refusal.reason, refusal.code, refusal.revoke_as) == (check, code, revoke_as)
    if check.startswith("organization_"):
        assert refusal.context == {"organization": session.active_organization_id, "limit": check}
    else:
        assert refusal.context == {}


@pytest.mark.parametrize("check", ORDER)
def test_each_check_alone_refuses(check):
    changes = dict(BREAK[check].items())
    assert session_refusal(make_session(**changes), NOW).reason == check


def test_one_message_per_reason():
    messages = {check: session_refusal(broken_from(check), NOW).message for check in ORDER}
    messages["session_missing"] = session_refusal(None, NOW).message
    assert messages["organization_max_lifetime"] == messages["organization_idle_timeout"]
    del messages["organization_idle_timeout"]
    assert len(set(messages.values())) == len(messages)


def test_without_an_organization_only_the_global_rules_apply(settings):
    settings.SESSIONS = {**settings.SESSIONS, "IDLE_TIMEOUT_MINUTES": None}
    old = make_session(organization=False, created_at=NOW - timedelta(days=20),
                       last_activity_at=NOW - timedelta(days=1))
    assert session_refusal(old, NOW) is None


def test_boundaries_are_inclusive_for_use():
    """Exactly at a limit the session is still usable; the expiry itself is not."""
    assert session_refusal(make_session(last_activity_at=NOW - ORG_IDLE), NOW) is None
    assert session_refusal(make_session(created_at=NOW - ORG_LIFETIME), NOW) is None
    assert session_refusal(make_session(expires_at=NOW), NOW).reason == "expired"


def test_fresh_until_is_the_nearest_limit():
    session = make_session()
    assert session_fresh_until(session, NOW) == NOW + ORG_IDLE / 2  # 7.5 min < global idle / 2 < lifetime
    no_org = make_session(organization=False, expires_at=NOW + timedelta(minutes=5))
    assert session_fresh_until(no_org, NOW) == NOW + timedelta(minutes=5)
    late = make_session(created_at=NOW - ORG_LIFETIME + timedelta(minutes=2))
    assert session_fresh_until(late, NOW) == NOW + timedelta(minutes=2)
