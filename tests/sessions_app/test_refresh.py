"""Refresh: single-use tokens rotating inside one session, reuse detection, the grace window,
sliding expiry and the lifetimes."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from core.tokens import hash_token
from sessions_app.models import DeviceSession, RevokeReason, SpentRefreshToken
from sessions_app.services import session_touch
from tests.support.auth import bearer, login
from tests.support.errors import error_code
from tests.support.tokens import age_spend

REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


def refresh(token):
    return APIClient().post(REFRESH, {"refreshToken": token}, format="json")


def refreshed(token) -> dict:
    response = refresh(token)
    assert response.status_code == 200, response.content
    return response.json()


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def session_of(pair) -> DeviceSession:
    return DeviceSession.objects.get(pk=pair["session"]["id"])


age_spent = age_spend


# --- rotation -----------------------------------------------------------------------------------------

def test_refresh_rotates_inside_the_same_session(tokens):
    pair = refreshed(tokens["refreshToken"])
    assert set(pair) == {"accessToken", "refreshToken", "tokenType", "expiresIn", "refreshExpiresAt", "user",
                         "session"}
    assert pair["session"]["id"] == tokens["session"]["id"] and pair["session"]["current"] is True
    assert pair["refreshToken"] != tokens["refreshToken"] and pair["accessToken"] != tokens["accessToken"]
    assert pair["tokenType"] == "Bearer" and pair["expiresIn"] == 900
    session = session_of(pair)
    assert session.refresh_secret_hash == hash_token(pair["refreshToken"])
    # The spent token is recognised by its tag (sessions_app.refresh_tokens): no row is written for it.
    assert not SpentRefreshToken.objects.exists()
    assert DeviceSession.objects.count() == 1
    assert bearer(pair["accessToken"]).get(ME).status_code == 200
    # Routine: counted on the session, no audit row (AUDIT["RECORD_REFRESHES"], docs/audit.md).
    assert not AuditEvent.objects.filter(event=EventType.TOKEN_REFRESHED, session_id=session.pk).exists()
    assert session.refresh_count == 1 and session.last_activity_at == session.refresh_rotated_at
    # The chain goes on.
    assert refreshed(pair["refreshToken"])["session"]["id"] == str(session.pk)
    assert DeviceSession.objects.get(pk=session.pk).refresh_count == 2


def test_refresh_response_is_not_cacheable(tokens):
    assert "no-store" in refresh(tokens["refreshToken"])["Cache-Control"]


def test_raw_tokens_are_never_stored(tokens):
    pair = refreshed(tokens["refreshToken"])
    session = session_of(pair)
    stored = " ".join(str(v) for v in session.__dict__.values())
    for secret in (tokens["refreshToken"], pair["refreshToken"], pair["accessToken"], tokens["accessToken"]):
        assert secret not in stored
        assert secret[37:80] not in stored  # nor the secret part of a refresh token
    # Nothing of the pair is kept for the grace window: it is derived again from the spent token.
    assert not SpentRefreshToken.objects.exists()


# --- reuse and the grace window ---------------------------------------------------------------------------

def test_reuse_after_the_grace_window_revokes_the_session(tokens, settings):
    settings.AUTH_REFRESH_GRACE_SECONDS = 10
    pair = refreshed(tokens["refreshToken"])
    age_spent(tokens["refreshToken"], 11)
    response = refresh(tokens["refreshToken"])
    assert error_code(response, 401) == "refresh_token_reused"

    session = session_of(pair)
    assert session.revoked_at is not None and session.revoked_reason == RevokeReason.REFRESH_TOKEN_REUSED
    # Everything descended from that login stops working.
    assert error_code(refresh(pair["refreshToken"]), 401) == "session_revoked"
    assert error_code(bearer(pair["accessToken"]).get(ME), 401) == "session_revoked"
    assert error_code(bearer(tokens["accessToken"]).get(ME), 401) == "session_revoked"
    event = AuditEvent.objects.get(event=EventType.REFRESH_REUSE_DETECTED)
    assert event.session_id == session.pk and event.subject_id == session.user_id and event.success is False
    assert AuditEvent.objects.filter(event=EventType.SESSION_REVOKED, session_id=session.pk,
                                     context__reason="refresh_token_reused").exists()


def test_reuse_only_revokes_that_session(tokens, user, api):
    other = login(api, user.email)
    refreshed(tokens["refreshToken"])
    age_spent(tokens["refreshToken"], 60)
    assert error_code(refresh(tokens["refreshToken"]), 401) == "refresh_token_reused"
    assert bearer(other["accessToken"]).get(ME).status_code == 200
    assert refresh(other["refreshToken"]).status_code == 200


def test_within_grace_the_spent_token_gets_the_very_same_pair(tokens, settings):
    settings.AUTH_REFRESH_GRACE_SECONDS = 10
    first = refresh(tokens["refreshToken"])
    again = refresh(tokens["refreshToken"])
    third = refresh(tokens["refreshToken"])
    assert first.status_code == again.status_code == third.status_code == 200
    for response in (again, third):
        assert response.json()["accessToken"] == first.json()["accessToken"]
        assert response.json()["refreshToken"] == first.json()["refreshToken"]
        assert response.json()["session"]["id"] == first.json()["session"]["id"]
    # Still one live refresh token, one spent one, the session alive.
    session = session_of(first.json())
    assert session.is_alive()
    assert session.refresh_secret_hash == hash_token(first.json()["refreshToken"])
    assert not SpentRefreshToken.objects.exists()
    assert refresh(first.json()["refreshToken"]).status_code == 200
    assert AuditEvent.objects.filter(event=EventType.TOKEN_REFRESHED, context__replayed_within_grace=True).count() == 2


def test_grace_ends_when_the_successor_was_used(tokens):
    """A grandparent token is reuse even inside the window: the pair it would return is already spent."""
    pair = refreshed(tokens["refreshToken"])
    refreshed(pair["refreshToken"])
    assert error_code(refresh(tokens["refreshToken"]), 401) == "refresh_token_reused"
    assert session_of(pair).revoked_at is not None


def test_grace_window_edge(tokens, settings):
    settings.AUTH_REFRESH_GRACE_SECONDS = 10
    pair = refreshed(tokens["refreshToken"])
    age_spent(tokens["refreshToken"], 8)
    assert refreshed(tokens["refreshToken"])["refreshToken"] == pair["refreshToken"]
    age_spent(tokens["refreshToken"], 12)
    assert error_code(refresh(tokens["refreshToken"]), 401) == "refresh_token_reused"


def test_default_grace_is_ten_seconds(tokens):
    from sessions_app.app_settings import app_settings

    assert app_settings.REFRESH_GRACE == timedelta(seconds=10)


def test_grace_zero_turns_it_off(tokens, settings):
    settings.AUTH_REFRESH_GRACE_SECONDS = 0
    pair = refreshed(tokens["refreshToken"])
    assert error_code(refresh(tokens["refreshToken"]), 401) == "refresh_token_reused"
    assert error_code(refresh(pair["refreshToken"]), 401) == "session_revoked"


def test_a_token_whose_tag_does_not_verify_is_unknown_and_ends_nothing(tokens, settings):
    """Only a token of ours is spent: one that names the session with another secret or tag (a guess, a
    token forged from the session id an access token carries) is unknown, whether or not the session's
    token was ever refreshed, and the session lives on."""
    pair = refreshed(tokens["refreshToken"])
    spent = tokens["refreshToken"]
    flip = lambda token, at: token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1:]  # noqa: E731
    for forged in (flip(spent, 40), flip(spent, 80), flip(pair["refreshToken"], 80), spent[:69]):
        assert error_code(refresh(forged), 401) == "invalid_refresh_token", forged
    # Under another key-encryption key the spent token is not ours either.
    age_spend(spent, 60)
    original = settings.AUTH_KEY_ENCRYPTION_KEY
    settings.AUTH_KEY_ENCRYPTION_KEY = "b3RoZXIta2V5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGVzLWxvbmc"
    assert error_code(refresh(spent), 401) == "invalid_refresh_token"
    settings.AUTH_KEY_ENCRYPTION_KEY = original
    assert session_of(pair).is_alive()
    assert not AuditEvent.objects.filter(event=EventType.REFRESH_REUSE_DETECTED).exists()
    # The real spent token, after the window, is reuse.
    assert error_code(refresh(spent), 401) == "refresh_token_reused"


def test_a_token_whose_rotation_was_lost_is_unknown_and_ends_nothing(tokens):
    """docs/deploy.md "A refresh and the disk": a rotation lost in a crash of the database server leaves the
    device a token of ours that was never live. Its generation is not behind the session's, so it is not a
    spent one: refused as unknown, the session goes on with the token before it (live again)."""
    pair = refreshed(tokens["refreshToken"])
    DeviceSession.objects.filter(pk=pair["session"]["id"]).update(  # the rotation never reached the disk
        refresh_secret_hash=hash_token(tokens["refreshToken"]), refresh_count=0)
    assert error_code(refresh(pair["refreshToken"]), 401) == "invalid_refresh_token"
    assert session_of(pair).is_alive()
    refusal = AuditEvent.objects.get(event=EventType.TOKEN_REFRESH_FAILED, context__never_live=True)
    assert str(refusal.session_id) == pair["session"]["id"] and refusal.context["reason"] == "unknown"
    assert not AuditEvent.objects.filter(event=EventType.REFRESH_REUSE_DETECTED).exists()
    again = refreshed(tokens["refreshToken"])  # the token before it is the live one
    assert again["refreshToken"] == pair["refreshToken"]  # derived: the same successor as the lost rotation's


def test_a_reuse_says_how_far_behind_the_chain_the_token_was(tokens):
    first = refreshed(tokens["refreshToken"])
    second = refreshed(first["refreshToken"])
    refreshed(second["refreshToken"])
    assert error_code(refresh(tokens["refreshToken"]), 401) == "refresh_token_reused"
    event = AuditEvent.objects.get(event=EventType.REFRESH_REUSE_DETECTED)
    assert event.context["generations_behind"] == 3 and event.context["spent_at"] is None


# --- failures -------------------------------------------------------------------------------------------------

def test_unknown_refresh_token(tokens):
    assert error_code(refresh("mrt_" + "x" * 43), 401) == "invalid_refresh_token"
    assert error_code(refresh(tokens["accessToken"][:500]), 401) == "invalid_refresh_token"
    assert session_of(tokens).is_alive()
    # Unknown tokens concern nobody known: the first of this client's window is written, the next one
    # counted and summarised when the window ends (flood control, tests/audit/test_flood.py).
    assert AuditEvent.objects.filter(event=EventType.TOKEN_REFRESH_FAILED, context__reason="unknown").count() == 1
    from audit.services import audit_refusals_flush

    audit_refusals_flush(now=timezone.now() + timedelta(minutes=2))
    summary = AuditEvent.objects.get(event=EventType.AUDIT_REFUSALS_COUNTED)
    assert summary.context["event"] == EventType.TOKEN_REFRESH_FAILED and summary.context["count"] == 1


def test_malformed_refresh_bodies(db):
    for body in [{}, {"refreshToken": None}, {"refreshToken": 5}, {"refreshToken": ""},
                 {"refreshToken": "x" * 10_000}, {"refreshToken": ["a"]}, {"refreshToken": {"a": 1}}, [], "text"]:
        response = APIClient().post(REFRESH, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"]["code"] == "validation_error", body
    for raw, content_type in [(b"{", "application/json"), (b"refreshToken=x", "application/x-www-form-urlencoded"),
                              (b"\xff\xfe", "application/json")]:
        response = APIClient().generic("POST", REFRESH, raw, content_type=content_type)
        assert 400 <= response.status_code < 500, (raw, response.status_code)
        assert set(response.json()) == {"error"}


def test_refresh_of_an_expired_session(tokens):
    DeviceSession.objects.filter(pk=tokens["session"]["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert error_code(refresh(tokens["refreshToken"]), 401) == "session_expired"


def test_spent_token_of_an_expired_session(tokens):
    pair = refreshed(tokens["refreshToken"])
    DeviceSession.objects.filter(pk=pair["session"]["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert error_code(refresh(tokens["refreshToken"]), 401) == "session_expired"
    assert error_code(refresh(pair["refreshToken"]), 401) == "session_expired"


def test_refresh_of_a_revoked_session(tokens):
    assert bearer(tokens["accessToken"]).post("/api/v1/auth/logout").status_code == 204
    assert error_code(refresh(tokens["refreshToken"]), 401) == "session_revoked"


def test_refresh_of_an_inactive_user(tokens, user):
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert error_code(refresh(tokens["refreshToken"]), 401) == "session_revoked"


# --- lifetimes and sliding expiry -----------------------------------------------------------------------------

def test_lifetimes(api, user):
    before = timezone.now()
    short = login(api, user.email)
    remembered = login(api, user.email, rememberMe=True)
    after = timezone.now()
    for pair, days in ((short, 7), (remembered, 30)):
        expiry = parse(pair["refreshExpiresAt"])
        assert before + timedelta(days=days) <= expiry <= after + timedelta(days=days)
        session = session_of(pair)
        assert expiry == session.expires_at == parse(pair["session"]["expiresAt"])
        assert session.absolute_expires_at - session.created_at == timedelta(days=90)
    assert short["session"]["rememberMe"] is False and remembered["session"]["rememberMe"] is True
    again = refreshed(remembered["refreshToken"])
    assert parse(again["refreshExpiresAt"]) == session_of(again).expires_at


def _pretend_last_extended(pair, ago: timedelta, lifetime=timedelta(days=7)):
    """Move the session back in time as if its expiry had last been set ``ago``."""
    now = timezone.now()
    DeviceSession.objects.filter(pk=pair["session"]["id"]).update(
        created_at=now - ago, last_activity_at=now - ago, expires_at=now - ago + lifetime)


def test_refresh_slides_the_expiry_at_most_once_per_update_age(tokens):
    _pretend_last_extended(tokens, timedelta(hours=23))
    unchanged = session_of(tokens).expires_at
    pair = refreshed(tokens["refreshToken"])
    assert session_of(pair).expires_at == unchanged == parse(pair["refreshExpiresAt"])  # less than a day

    _pretend_last_extended(pair, timedelta(days=2))
    before = timezone.now()
    pair = refreshed(pair["refreshToken"])
    extended = session_of(pair).expires_at
    assert extended >= before + timedelta(days=7) and parse(pair["refreshExpiresAt"]) == extended
    pair = refreshed(pair["refreshToken"])
    assert session_of(pair).expires_at == extended  # once per day, not per refresh


def test_sliding_never_passes_the_absolute_cap(tokens):
    now = timezone.now()
    cap = now + timedelta(days=3)
    DeviceSession.objects.filter(pk=tokens["session"]["id"]).update(
        created_at=now - timedelta(days=87), expires_at=now + timedelta(hours=1), absolute_expires_at=cap)
    pair = refreshed(tokens["refreshToken"])
    assert session_of(pair).expires_at == cap == parse(pair["refreshExpiresAt"])
    # At the cap the session ends however active it was.
    DeviceSession.objects.filter(pk=pair["session"]["id"]).update(absolute_expires_at=now, expires_at=now)
    assert error_code(refresh(pair["refreshToken"]), 401) == "session_expired"


def test_api_activity_slides_the_expiry_too(tokens, authed):
    _pretend_last_extended(tokens, timedelta(days=2))
    before = timezone.now()
    assert authed.get(ME).status_code == 200
    session = session_of(tokens)
    assert session.expires_at >= before + timedelta(days=7)
    assert session.last_activity_at >= before


def test_touch_writes_at_most_once_per_resolution(tokens, django_assert_num_queries):
    session = session_of(tokens)
    with django_assert_num_queries(0):
        session_touch(session)  # just logged in: nothing to write
    session.last_activity_at -= timedelta(minutes=2)
    with django_assert_num_queries(1):
        session_touch(session)


def test_remember_me_sliding_uses_its_own_lifetime(api, user):
    pair = login(api, user.email, rememberMe=True)
    _pretend_last_extended(pair, timedelta(days=2), lifetime=timedelta(days=30))
    before = timezone.now()
    pair = refreshed(pair["refreshToken"])
    assert session_of(pair).expires_at >= before + timedelta(days=30)


# --- queries ---------------------------------------------------------------------------------------------------

# Measured: find the session with its user, then one statement that rotates it with the conditional UPDATE
# (and counts the refresh on the session: no audit row for a routine refresh, docs/audit.md) and INSERTs the
# spent token; no BEGIN or COMMIT: a routine refresh writes only that statement, outside a transaction
# (sessions_app.services.session_refresh). Whatever the number of sessions in the table. SQLite (the
# embedded default) has no data-modifying WITH: BEGIN, the UPDATE, the INSERT, COMMIT after the lookup.
REFRESH_MAX_QUERIES = 2 if connection.vendor == "postgresql" else 5


def _refresh_queries(token, django_assert_max_num_queries):
    from django.test.utils import CaptureQueriesContext

    with django_assert_max_num_queries(REFRESH_MAX_QUERIES):
        with CaptureQueriesContext(connection) as captured:
            token = refreshed(token)["refreshToken"]
    return token, len(captured)


def test_refresh_uses_a_small_constant_number_of_queries(api, user, django_assert_max_num_queries, settings):
    # Not counted here: the signing-key generation check, at most one query per interval and process
    # (tests/identity/test_key_generation.py).
    settings.IDENTITY = {**settings.IDENTITY, "KEY_GENERATION_CHECK_SECONDS": 3600}
    token = login(api, user.email)["refreshToken"]
    token, few = _refresh_queries(token, django_assert_max_num_queries)
    now = timezone.now()
    DeviceSession.objects.bulk_create([
        DeviceSession(user=user, expires_at=now + timedelta(days=1), absolute_expires_at=now + timedelta(days=2),
                      refresh_token_hash=hash_token(f"other-{i}"))
        for i in range(300)
    ])
    for _ in range(3):
        token, many = _refresh_queries(token, django_assert_max_num_queries)
        assert many == few


def test_grace_replay_query_count(tokens, django_assert_max_num_queries, settings):
    # Not counted here: the signing-key generation check, at most one query per interval and process
    # (tests/identity/test_key_generation.py).
    settings.IDENTITY = {**settings.IDENTITY, "KEY_GENERATION_CHECK_SECONDS": 3600}
    refreshed(tokens["refreshToken"])
    # BEGIN, find (no longer current), the spent token's row (none: it has a tag), its session and user by
    # the id it names, the audit row (no lock, no chain head: audit/chain.py), COMMIT. The sealer links the
    # row later, off the request path.
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": False}
    with django_assert_max_num_queries(6):
        refreshed(tokens["refreshToken"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement on PostgreSQL (core/prepared.py)")
def test_a_routine_refresh_is_one_write_outside_a_transaction_and_others_stay_in_one(api, user, settings):
    """The routine rotation commits on its own (no BEGIN/COMMIT round trips); a refresh with something to
    record (here: routine refreshes recorded as audit rows) still runs in the audited transaction."""
    settings.IDENTITY = {**settings.IDENTITY, "KEY_GENERATION_CHECK_SECONDS": 3600}
    token = login(api, user.email)["refreshToken"]
    seen = []

    def record(execute, sql, params, many, context):
        seen.append((sql.split(" ", 1)[0], connection.in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        token = refreshed(token)["refreshToken"]
    assert seen == [("SELECT", False), ("WITH", False)]

    settings.AUDIT = {**settings.AUDIT, "RECORD_REFRESHES": True}
    seen.clear()
    with connection.execute_wrapper(record):
        refreshed(token)
    writes = [(verb, atomic) for verb, atomic in seen if verb != "SELECT"]
    assert ("UPDATE", True) in writes and all(atomic for _, atomic in writes)
    assert AuditEvent.objects.filter(event=EventType.TOKEN_REFRESHED).count() == 1


ASYNCHRONOUS = "set_config('synchronous_commit', 'off', true)"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's synchronous_commit")
def test_only_the_routine_rotation_commits_without_waiting_for_the_disk(api, user, settings):
    """docs/deploy.md "A refresh and the disk": the routine rotation's own statement turns the WAL flush
    wait off for its implicit transaction; the audited transaction (a refusal, an anomaly, a recorded
    refresh) commits as every other write does, and so does every rotation with the setting off. Nothing
    stays set on the connection (PgBouncer's transaction mode hands it to someone else next)."""
    settings.IDENTITY = {**settings.IDENTITY, "KEY_GENERATION_CHECK_SECONDS": 3600}
    token = login(api, user.email)["refreshToken"]
    seen = []

    def record(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    def rotation_sql(token):
        seen.clear()
        with connection.execute_wrapper(record):
            token = refreshed(token)["refreshToken"]
        rotation, = [sql for sql in seen if "UPDATE" in sql]
        return token, rotation

    token, rotation = rotation_sql(token)
    assert rotation.startswith(f"WITH asynchronous AS (SELECT {ASYNCHRONOUS}) UPDATE ")
    assert " FROM asynchronous WHERE " in rotation and "INSERT" not in rotation  # no spent row: a tagged token
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"

    settings.SESSIONS = {**settings.SESSIONS, "REFRESH_ASYNC_COMMIT": False}
    token, rotation = rotation_sql(token)
    assert ASYNCHRONOUS not in rotation

    settings.SESSIONS = {**settings.SESSIONS, "REFRESH_ASYNC_COMMIT": True}
    settings.AUDIT = {**settings.AUDIT, "RECORD_REFRESHES": True}
    token, rotation = rotation_sql(token)
    assert ASYNCHRONOUS not in rotation  # in the audited transaction: its COMMIT waits for the disk


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's synchronous_commit")
def test_set_config_in_a_joined_cte_holds_for_that_statement_only():
    """What the rotation relies on: a volatile CTE joined by the statement runs in it, and a local setting
    lasts to the end of the statement's implicit transaction (whose commit reads it), not beyond."""
    with connection.cursor() as cursor:
        cursor.execute(f"WITH asynchronous AS (SELECT {ASYNCHRONOUS}) "
                       "SELECT current_setting('synchronous_commit') FROM (SELECT 1) one CROSS JOIN asynchronous")
        assert cursor.fetchone()[0] == "off"
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's synchronous_commit")
def test_an_update_joining_the_cte_runs_without_waiting_and_leaves_nothing_set():
    """The routine rotation's form (core.prepared.PreparedUpdate with asynchronous_commit): the UPDATE joins
    the one-row CTE with FROM, so the setting holds while it runs and its implicit transaction commits."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE rotation_probe (id int PRIMARY KEY, n int)")
        cursor.execute("INSERT INTO rotation_probe VALUES (1, 0)")
        cursor.execute(f"WITH asynchronous AS (SELECT {ASYNCHRONOUS}) UPDATE rotation_probe SET n = n + 1 "
                       "FROM asynchronous WHERE id = 1 RETURNING current_setting('synchronous_commit')")
        assert cursor.fetchall() == [("off",)]
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
        cursor.execute("SELECT n FROM rotation_probe")
        assert cursor.fetchone()[0] == 1
        cursor.execute("DROP TABLE rotation_probe")
