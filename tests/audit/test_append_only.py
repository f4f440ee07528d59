"""Audit rows are written once: the model, the queryset and the database itself refuse edits."""

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from audit.models import AuditEvent, EventType
from audit.services import audit_record
from tests.factories import UserFactory


@pytest.fixture
def row(db):
    return audit_record(event=EventType.LOGIN_FAILED, success=False, reason="invalid_credentials")


def _unchanged(row):
    fresh = AuditEvent.objects.get(pk=row.pk)
    assert (fresh.event, fresh.success, fresh.context) == (EventType.LOGIN_FAILED, False,
                                                           {"reason": "invalid_credentials"})


def test_saving_an_existing_row_raises(row):
    row.success = True
    with pytest.raises(TypeError, match="append-only"):
        row.save()
    loaded = AuditEvent.objects.get(pk=row.pk)
    loaded.context = {"reason": "edited"}
    with pytest.raises(TypeError, match="append-only"):
        loaded.save(update_fields=["context"])
    _unchanged(row)


def test_a_new_instance_cannot_overwrite_a_row_by_reusing_its_id(row):
    impostor = AuditEvent(pk=row.pk, event=EventType.LOGIN_SUCCEEDED, context={"forged": True})
    with pytest.raises(IntegrityError), transaction.atomic():
        impostor.save()
    _unchanged(row)


def test_queryset_update_raises(row):
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.filter(pk=row.pk).update(success=True)
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.update(success=True)
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.update_or_create(pk=row.pk, defaults={"success": True})
    row.success = True
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.bulk_update([row], ["success"])
    _unchanged(row)


def test_raw_sql_update_is_refused_by_the_database(row):
    """audit/migrations/0002 installs a BEFORE UPDATE trigger (PostgreSQL and SQLite)."""
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE audit_auditevent SET success = %s WHERE id = %s", [True, row.pk])
    _unchanged(row)


def test_rows_can_still_be_inserted_and_deleted_for_retention(row):
    user = UserFactory()
    second = audit_record(event=EventType.LOGIN_SUCCEEDED, actor=user)
    assert AuditEvent.objects.count() == 2
    AuditEvent.objects.filter(pk=row.pk).delete()
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [second.pk]


def test_rows_outlive_the_user(db):
    user = UserFactory()
    row = audit_record(event=EventType.LOGIN_SUCCEEDED, actor=user)
    user_id = user.pk
    user.delete()
    fresh = AuditEvent.objects.get(pk=row.pk)
    assert fresh.actor_id == user_id and fresh.subject_id == user_id
