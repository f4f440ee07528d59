"""Cleanup of expired rows in bounded batches (issue 15, "flat at one million device sessions").

A cleanup task deletes what ended long ago: expired sessions, spent links and codes. One
``DELETE ... WHERE expires_at < cutoff`` over a big backlog holds its row locks (and its cascades', and
the WAL it writes) for as long as it runs, and every request that touches one of those rows waits. So a
cleanup here takes at most ``batch_size`` primary keys at a time (an index-only read with a LIMIT, no
sort), deletes exactly those rows in a transaction of its own, and goes on until nothing is left: each
transaction is short and bounded whatever the backlog, and requests wait for one batch at most.

Call these in autocommit (a Celery task, a management command): inside an outer ``atomic`` block the
batches would become savepoints of one long transaction and keep every lock to the end.
"""

from __future__ import annotations

from django.db import transaction

BATCH_SIZE = 1000


def delete_in_batches(queryset, *, batch_size: int | None = None, children=()) -> int:
    """Delete the rows of ``queryset`` (and their cascades), ``batch_size`` primary keys per transaction.
    ``children``: ``(queryset, field)`` pairs of rows that cascade from these and may be many per row (a
    session's spent refresh tokens): they are deleted first, in batches of their own, so that the
    cascade of one batch stays small too. Returns how many rows of the queryset's model were deleted."""
    batch_size = batch_size or BATCH_SIZE
    model = queryset.model
    label = model._meta.label
    deleted = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        for child, field in children:
            delete_in_batches(child.filter(**{f"{field}__in": ids}), batch_size=batch_size)
        with transaction.atomic():
            deleted += model._base_manager.filter(pk__in=ids).delete()[1].get(label, 0)
        if len(ids) < batch_size:
            return deleted


def update_in_batches(queryset, *, batch_size: int | None = None, **changes) -> int:
    """``queryset.update(**changes)`` in batches of ``batch_size`` primary keys per transaction. The
    queryset must stop matching a row once it is updated (or this would not end)."""
    batch_size = batch_size or BATCH_SIZE
    model = queryset.model
    updated = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            return updated
        with transaction.atomic():
            updated += model._base_manager.filter(pk__in=ids).update(**changes)
        if len(ids) < batch_size:
            return updated
