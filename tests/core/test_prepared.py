"""core.prepared.PreparedQuery: the hot-path lookups compiled once give exactly what the queryset gives."""

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django.db.models.signals import post_init

from core.prepared import PreparedInsert, PreparedQuery, PreparedUpdate, PreparedUpdateThenInsert, _db_value, _from_db
from orgs.models import Membership, Organization
from sessions_app.models import DeviceSession, SealedWith, SpentRefreshToken
from sessions_app.selectors import (session_by_browser_key_hash, session_by_refresh_hash, session_by_refresh_secret,
                                    session_for_claims)
from sessions_app.services import session_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

FIELDS = [field.attname for field in DeviceSession._meta.concrete_fields]


def plain(**lookup):
    return DeviceSession.objects.select_related("user", "active_organization").filter(**lookup).first()


def same_row(prepared, reference):
    assert type(prepared) is DeviceSession and prepared.pk == reference.pk
    for name in FIELDS:
        if name != "browser_data":
            assert getattr(prepared, name) == getattr(reference, name), name
    assert prepared.user == reference.user
    for field in type(reference.user)._meta.concrete_fields:
        assert getattr(prepared.user, field.attname) == getattr(reference.user, field.attname), field.attname
    assert prepared.active_organization == reference.active_organization


def test_by_id_refresh_and_browser_key_are_the_querysets_rows_in_one_statement():
    user = UserFactory()
    organization = Organization.objects.create(name="Acme", idle_timeout_seconds=3600)
    Membership.objects.create(user=user, organization=organization, role="admin")
    pair = session_create(user=user)
    DeviceSession.objects.filter(pk=pair.session.pk).update(active_organization=organization,
                                                            browser_key_hash="k" * 64, browser_data='{"a": 1}')
    reference = plain(pk=pair.session.pk)

    with CaptureQueriesContext(connection) as queries:
        by_id = session_for_claims({"sid": str(pair.session.pk), "sub": str(user.pk)})
        assert by_id.user.email == user.email and by_id.active_organization.idle_timeout_seconds == 3600
    assert len(queries) == 1  # the user and the organization came with the row
    same_row(by_id, reference)
    same_row(session_by_refresh_secret(reference.pk, reference.refresh_secret_hash), reference)
    by_key = session_by_browser_key_hash("k" * 64)
    same_row(by_key, reference)
    assert by_key.active_org_role == "admin" and by_key.browser_data == '{"a": 1}'

    with CaptureQueriesContext(connection) as queries:
        assert by_id.browser_data == '{"a": 1}'  # left out of the bearer lookup, loaded when asked for
    assert len(queries) == 1


def built_state(instance) -> dict:
    attributes = dict(vars(instance))
    state = attributes.pop("_state")
    cache = attributes.pop("_prefetched_objects_cache", None)
    return {"attributes": attributes, "adding": state.adding, "db": state.db, "cached": dict(state.fields_cache),
            "prefetched": cache}


def test_an_instance_is_built_as_djangos_from_db_builds_it():
    user = UserFactory()
    session = session_create(user=user).session
    names = [field.attname for field in DeviceSession._meta.concrete_fields if field.name != "browser_data"]
    values = DeviceSession.objects.filter(pk=session.pk).values_list(*names).get()
    ours, djangos = _from_db(DeviceSession, "default", names, values), DeviceSession.from_db("default", names, values)
    assert built_state(ours) == built_state(djangos)
    assert ours.get_deferred_fields() == djangos.get_deferred_fields() == {"browser_data"}
    assert ours.user == user and ours.browser_data == ""  # a relation and a deferred field load on access
    ours.device_name = "renamed"
    ours.save(update_fields=["device_name"])  # not adding: an UPDATE
    assert DeviceSession.objects.get(pk=session.pk).device_name == "renamed"


def test_an_instance_is_built_by_django_when_a_receiver_listens():
    session = session_create(user=UserFactory()).session
    names = [field.attname for field in DeviceSession._meta.concrete_fields]
    values = DeviceSession.objects.filter(pk=session.pk).values_list(*names).get()
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(receiver, sender=DeviceSession)
    try:
        built = _from_db(DeviceSession, "default", names, values)
        assert session_by_refresh_secret(session.pk, session.refresh_secret_hash).pk == session.pk
    finally:
        post_init.disconnect(receiver, sender=DeviceSession)
    assert seen[0] is built and len(seen) == 2  # the signal was sent: the instances were built by __init__


def test_a_missing_row_or_another_users_token_is_none():
    user = UserFactory()
    pair = session_create(user=user)
    assert session_for_claims({"sid": str(uuid.uuid4()), "sub": str(user.pk)}) is None
    assert session_for_claims({"sid": str(pair.session.pk), "sub": str(uuid.uuid4())}) is None
    assert session_for_claims({"sid": "not-a-uuid", "sub": str(user.pk)}) is None
    assert session_by_refresh_hash("0" * 64) is None
    assert session_by_refresh_secret(pair.session.pk, "0" * 64) is None
    assert session_by_refresh_secret(uuid.uuid4(), pair.session.refresh_secret_hash) is None
    assert session_by_browser_key_hash("0" * 64) is None


def test_a_session_without_organization_has_none_cached():
    user = UserFactory()
    reference = plain(pk=session_create(user=user).session.pk)
    with CaptureQueriesContext(connection) as queries:
        row = session_by_refresh_secret(reference.pk, reference.refresh_secret_hash)
        assert row.active_organization is None
    assert len(queries) == 1


def test_a_value_may_occur_twice_but_placeholders_must_differ_and_occur():
    both = PreparedQuery(lambda value: DeviceSession.objects.filter(device_id=value, device_name=value),
                         field="device_id", sentinel="prepared:twice")
    user = UserFactory()
    session = session_create(user=user, device_id="same", device_name="same").session
    assert both.first("same").pk == session.pk and both.first("other") is None
    clash = PreparedQuery(lambda a, b: DeviceSession.objects.filter(device_id=a, device_name=b),
                          params={"a": ("device_id", "prepared:x"), "b": ("device_name", "prepared:x")})
    with pytest.raises(ValueError, match="compare equal"):
        clash.first(a="1", b="2")
    unused = PreparedQuery(lambda a, b: DeviceSession.objects.filter(device_id=a),
                           params={"a": ("device_id", "prepared:a"), "b": ("device_name", "prepared:b")})
    with pytest.raises(ValueError, match="not among"):
        unused.first(a="1", b="2")


def test_several_values_and_all_rows_in_order():
    user, other = UserFactory(), UserFactory()
    sessions = [session_create(user=user, device_id=f"d{i}").session for i in range(3)]
    session_create(user=other)
    newest_first = PreparedQuery(
        lambda user_id, now: DeviceSession.objects.filter(user_id=user_id, expires_at__gt=now).order_by("-created_at"),
        params={"user_id": ("user", uuid.UUID(int=7)), "now": ("expires_at", timezone.now() - timedelta(days=9999))})
    rows = newest_first.all(user_id=user.pk, now=timezone.now())
    assert [row.pk for row in rows] == [s.pk for s in reversed(sessions)]
    assert newest_first.all(user_id=user.pk, now=timezone.now() + timedelta(days=400)) == []


def test_prepared_update_changes_only_the_row_that_matches_and_applies_the_expressions():
    update = PreparedUpdate(DeviceSession, where=("pk", "refresh_secret_hash"),
                            set=("refresh_secret_hash", "last_activity_at"),
                            fixed={"refresh_count": F("refresh_count") + 1})
    user = UserFactory()
    row = plain(pk=session_create(user=user).session.pk)
    other = plain(pk=session_create(user=user).session.pk)
    later = timezone.now() + timedelta(minutes=5)
    assert update.execute((row.pk, "not-its-hash"), ("x" * 64, later)) == 0
    assert update.execute((row.pk, row.refresh_secret_hash), ("y" * 64, later)) == 1
    changed, untouched = DeviceSession.objects.get(pk=row.pk), DeviceSession.objects.get(pk=other.pk)
    assert (changed.refresh_secret_hash, changed.last_activity_at, changed.refresh_count) == ("y" * 64, later, 1)
    assert (untouched.refresh_secret_hash, untouched.refresh_count) == (other.refresh_secret_hash, 0)


def test_prepared_insert_writes_the_row_the_orm_would():
    session = session_create(user=UserFactory()).session
    spent = SpentRefreshToken(token_hash="h" * 64, session=session, spent_at=timezone.now(), successor_hash="s" * 64,
                              successor_encrypted="sealed", successor_sealed_with=SealedWith.SPENT_TOKEN)
    with CaptureQueriesContext(connection) as queries:
        PreparedInsert(SpentRefreshToken).execute(spent)
    assert len(queries) == 1 and not spent._state.adding
    stored = SpentRefreshToken.objects.get(pk="h" * 64)
    assert (stored.session_id, stored.spent_at, stored.successor_hash, stored.successor_encrypted) == (
        session.pk, spent.spent_at, "s" * 64, "sealed")


def test_a_field_without_a_placeholder_type_is_refused_at_compile():
    update = PreparedUpdate(DeviceSession, where=("pk",), set=("remember_me",))
    with pytest.raises(ValueError, match="no placeholder"):
        update.execute((uuid.uuid4(),), (True,))


def _rotate_then_spend():
    return PreparedUpdateThenInsert(
        PreparedUpdate(DeviceSession, where=("pk", "refresh_secret_hash"), set=("refresh_secret_hash",),
                       fixed={"refresh_count": F("refresh_count") + 1}),
        PreparedInsert(SpentRefreshToken))


def _spent(session, token_hash):
    return SpentRefreshToken(token_hash=token_hash, session=session, spent_at=timezone.now(),
                             successor_hash="s" * 64, successor_encrypted="", successor_sealed_with=SealedWith.SPENT_TOKEN)


def test_update_then_insert_inserts_only_when_the_update_changed_the_row():
    statement = _rotate_then_spend()
    session = session_create(user=UserFactory()).session
    current = session.refresh_secret_hash
    assert statement.execute((session.pk, "not-its-hash"), ("x" * 64,), _spent(session, "a" * 64)) is False
    assert not SpentRefreshToken.objects.filter(pk="a" * 64).exists()
    assert DeviceSession.objects.get(pk=session.pk).refresh_secret_hash == current
    spent = _spent(session, "b" * 64)
    assert statement.execute((session.pk, current), ("y" * 64,), spent) is True
    assert not spent._state.adding
    changed = DeviceSession.objects.get(pk=session.pk)
    assert (changed.refresh_secret_hash, changed.refresh_count) == ("y" * 64, 1)
    assert SpentRefreshToken.objects.get(pk="b" * 64).session_id == session.pk
    # The same token again: the row no longer matches, so nothing is inserted (no duplicate-key error either).
    assert statement.execute((session.pk, current), ("z" * 64,), _spent(session, "b" * 64)) is False


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement on PostgreSQL only")
def test_update_then_insert_is_one_statement_on_postgresql_and_all_or_nothing():
    statement = _rotate_then_spend()
    session = session_create(user=UserFactory()).session
    current = session.refresh_secret_hash
    with CaptureQueriesContext(connection) as queries:
        statement.execute((session.pk, current), ("y" * 64,), _spent(session, "c" * 64))
    assert len(queries) == 1 and queries[0]["sql"].startswith("WITH changed AS (UPDATE")
    # The insert fails (the spent token exists): the update is undone with it, as one statement is.
    with pytest.raises(IntegrityError), transaction.atomic():
        statement.execute((session.pk, "y" * 64), ("w" * 64,), _spent(session, "c" * 64))
    assert DeviceSession.objects.get(pk=session.pk).refresh_secret_hash == "y" * 64


def test_update_then_insert_needs_the_primary_key():
    with pytest.raises(ValueError, match="primary key"):
        PreparedUpdateThenInsert(PreparedUpdate(DeviceSession, where=("refresh_secret_hash",), set=("remember_me",)),
                                 PreparedInsert(SpentRefreshToken))


def test_prepared_insert_reads_back_a_generated_primary_key():
    from audit.models import AuditEvent, EventType

    user = UserFactory()
    first = AuditEvent(event=EventType.LOGIN_SUCCEEDED, actor=user, subject=user, context={"k": [1, "two"]},
                       created_at=timezone.now())
    second = AuditEvent(event=EventType.LOGOUT, actor=user, subject=user, context={}, created_at=timezone.now())
    insert = PreparedInsert(AuditEvent)
    with CaptureQueriesContext(connection) as queries:
        insert.execute(first)
        insert.execute(second)
    assert len(queries) == 2 and "RETURNING" in queries[0]["sql"]
    assert isinstance(first.pk, int) and second.pk > first.pk and not first._state.adding
    stored = AuditEvent.objects.get(pk=first.pk)
    assert (stored.event, stored.actor_id, stored.context) == (EventType.LOGIN_SUCCEEDED, user.pk, {"k": [1, "two"]})


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's synchronous_commit")
def test_an_asynchronous_commit_is_asked_by_the_statement_only_outside_a_transaction():
    statement = _rotate_then_spend()
    session = session_create(user=UserFactory()).session
    with CaptureQueriesContext(connection) as queries:
        assert statement.execute((session.pk, session.refresh_secret_hash), ("y" * 64,), _spent(session, "e" * 64),
                                 asynchronous_commit=True)
    sql, = [query["sql"] for query in queries]
    assert sql.startswith("WITH asynchronous AS (SELECT set_config('synchronous_commit', 'off', true)), changed")
    # Committed and visible; the connection keeps its own setting.
    assert DeviceSession.objects.get(pk=session.pk).refresh_secret_hash == "y" * 64
    assert SpentRefreshToken.objects.filter(pk="e" * 64).exists()
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    # Inside a transaction its own COMMIT decides: the statement asks nothing.
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert statement.execute((session.pk, "y" * 64), ("z" * 64,), _spent(session, "f" * 64),
                                 asynchronous_commit=True)
    assert all("set_config" not in query["sql"] for query in queries)


AWARE = timezone.now()
NAIVE = AWARE.replace(tzinfo=None)


@pytest.mark.parametrize(("model", "name", "value"), [
    (SpentRefreshToken, "token_hash", "a" * 64),
    (SpentRefreshToken, "successor_encrypted", "sealed"),
    (SpentRefreshToken, "spent_at", AWARE),
    (SpentRefreshToken, "spent_at", NAIVE),
    (SpentRefreshToken, "spent_at", None),
    (SpentRefreshToken, "session", uuid.UUID(int=7)),
    (SpentRefreshToken, "session", str(uuid.UUID(int=7))),
    (DeviceSession, "id", uuid.UUID(int=8)),
    (DeviceSession, "id", uuid.UUID(int=8).hex),
    (DeviceSession, "refresh_secret_hash", ""),
    (DeviceSession, "refresh_token_hash", None),
    (DeviceSession, "refresh_count", 3),
    (DeviceSession, "amr", ["pwd"]),
    (DeviceSession, "user", uuid.UUID(int=9)),
], ids=lambda v: type(v).__name__)
@pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime")
def test_a_value_is_sent_as_django_would_send_it(model, name, value):
    field = model._meta.get_field(name)
    assert repr(_db_value(field, value, connection)) == repr(field.get_db_prep_save(value, connection))
    if not isinstance(value, list):  # a lookup's form (JSON is only ever written here)
        assert repr(_db_value(field, value, connection, lookup=True)) == repr(
            field.get_db_prep_value(field.get_prep_value(value), connection, prepared=True))


def test_the_asynchronous_commit_splices_only_an_update_of_the_expected_shape():
    """PreparedUpdate(asynchronous_commit=True) joins a CTE with FROM before the one WHERE of Django's UPDATE;
    a statement of another shape is refused with an error, never sent spliced wrongly."""
    update = PreparedUpdate(DeviceSession, where=("pk",), set=("device_name",))
    spliced = update._asynchronous('UPDATE "t" SET "a" = %s WHERE "t"."id" = %s')
    assert spliced == ("WITH asynchronous AS (SELECT set_config('synchronous_commit', 'off', true)) "
                       'UPDATE "t" SET "a" = %s FROM asynchronous WHERE "t"."id" = %s')
    for text in ('UPDATE "t" SET "a" = %s', 'UPDATE "t" SET "a" = (SELECT 1 WHERE true) WHERE "id" = %s',
                 'WITH x AS (SELECT 1) UPDATE "t" SET "a" = %s WHERE "id" = %s'):
        with pytest.raises(ValueError, match="asynchronous commit"):
            update._asynchronous(text)
