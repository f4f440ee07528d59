"""Refusals into the audit trail: every refusal gets exactly one ``success=False`` row, written where
it survives the refusal.

Three forms, by what the refused work leaves behind:

- ``audit_refusal``: nothing to roll back or keep (a wrong password, an unknown client). One row,
  then the caller raises: ``raise audit_refusal(InvalidCredentials(), event=EventType.LOGIN_FAILED,
  request=request, subject=user)``. Call it where the raise rolls nothing back, that is outside the
  atomic block the error leaves (inside it, the row would be rolled back with the block).
- ``with audited_refusals(event=...) as scope:``: the block runs in a transaction. An ``ApiError``
  raised anywhere in it rolls the whole block back (a spent link token is unspent again); then the
  refusal row is appended in a transaction of its own and the error propagates. The block fills in
  what it learns on the way (``scope.subject = user``, ``scope.organization = ...``,
  ``scope.context[...]``), so the row names whom the refusal concerns.
- ``scope.refuse(error)``: the refusal keeps what the block already wrote (a session revoked as a
  refresh-token reuse, a lockout started): the row is appended inside the block's transaction, the
  block commits with it, then ``error`` is raised.

The row: ``event`` (``refuse`` may name another), ``success=False``, the scope's request, actor,
subject, session and organization, its context, and ``reason``: the one given, else the error's
``audit_reason`` attribute (a refusal that answers like another but is told apart in the trail),
else ``error.code``; ``reason=NO_REASON`` writes none (an event that names its refusal by itself, such as
``auth.token.reuse_detected``, whose rows never carried one). An error's ``audit_context`` dict is added
to the context last (it wins a clash).

Lock order: an audit row takes no lock since issue 15 (audit/chain.py: rows are sealed later, off the
request path). The rollback form writes after the block has ended, so it holds no row lock then;
``scope.refuse`` writes inside the block, which still locks the rows it changes before it refuses.
Keep ``audited_refusals`` the outermost transaction of a use case: an enclosing transaction that rolls
back takes the refusal row (and what ``refuse`` kept) with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

from django.db import transaction

from audit.models import AuditEvent, EventType
from audit.services import audit_record
from core.errors import ApiError

Error = TypeVar("Error", bound=ApiError)

_ROW_FIELDS = frozenset({"request", "actor", "subject", "session", "organization"})


NO_REASON: Any = object()  # ``refuse(..., reason=NO_REASON)``: the row has no ``reason`` key


class _Refused(BaseException):
    """``RefusalScope.refuse``'s marker, caught by its own ``audited_refusals`` inside the atomic
    block so that the block ends normally and commits. A BaseException, so that an ``except
    Exception`` in the block cannot swallow it."""

    def __init__(self, error: ApiError):
        super().__init__(error)
        self.error = error


class RefusalScope:
    """Yielded by ``audited_refusals``: what the refusal row will say. The block may set ``actor``,
    ``subject``, ``session`` and ``organization`` and add to ``context`` as it learns them."""

    def __init__(self, *, event: EventType, request, actor, subject, session, organization,
                 context: dict[str, Any]):
        self.event = event
        self.request = request
        self.actor = actor
        self.subject = subject
        self.session = session
        self.organization = organization
        self.context = dict(context)
        self._depth: int | None = None  # atomic nesting depth of the block while it runs

    def refuse(self, error: ApiError, *, reason: str | None = None, event: EventType | None = None,
               **row: Any) -> NoReturn:
        """Refuse with ``error`` and keep what the block already wrote: the refusal row is appended
        now, in the block's transaction, which then commits; ``audited_refusals`` raises ``error``.
        ``event`` replaces the scope's event for this row; ``reason=NO_REASON`` leaves the row without a
        reason (module docstring); ``row``: ``request``, ``actor``, ``subject``, ``session`` or
        ``organization`` for this row (``actor=None`` included), anything else is added to its context.

        Call it in the block itself, not inside an atomic block nested in it: the nested block would
        roll back what this keeps (a RuntimeError says so)."""
        if self._depth is None or len(transaction.get_connection().atomic_blocks) != self._depth:
            raise RuntimeError("RefusalScope.refuse() must be called directly in its audited_refusals block "
                               "(not after it, nor inside a nested atomic block, which would roll back the "
                               "work and the row it keeps).")
        fields = {**self._fields(), **{name: row.pop(name) for name in _ROW_FIELDS & row.keys()}}
        _refusal_row(error, event=event or self.event, reason=reason, fields=fields,
                     context={**self.context, **row})
        raise _Refused(error)

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _ROW_FIELDS}


@contextmanager
def audited_refusals(*, event: EventType, request=None, actor=None, subject=None, session=None,
                     organization=None, **context: Any) -> Iterator[RefusalScope]:
    """Run the block in a transaction. An ``ApiError`` raised anywhere in it rolls the block back,
    then one refusal row (``success=False``, see the module docstring for its fields) is appended in a
    transaction of its own and the error propagates. ``scope.refuse(error)`` is the variant that
    commits the block with its refusal row. Anything else the block raises propagates unaudited (a
    bug, not a refusal)."""
    scope = RefusalScope(event=event, request=request, actor=actor, subject=subject, session=session,
                         organization=organization, context=context)
    refused: ApiError | None = None
    try:
        with transaction.atomic():
            scope._depth = len(transaction.get_connection().atomic_blocks)
            try:
                yield scope
            except _Refused as marker:  # its row is written: end the block normally, so it commits
                refused = marker.error
            finally:
                scope._depth = None
    except ApiError as error:  # the block has rolled back; the refusal row goes in after it
        with transaction.atomic():
            _refusal_row(error, event=scope.event, reason=None, fields=scope._fields(), context=scope.context)
        raise
    if refused is not None:
        raise refused


def audit_refusal(error: Error, *, event: EventType, reason: str | None = None, request=None, actor=None,
                  subject=None, session=None, organization=None, **context: Any) -> Error:
    """Append the refusal row of ``error`` and return the error, for the caller to raise. For a
    refusal with nothing to roll back or keep; call it outside the atomic block the error leaves."""
    _refusal_row(error, event=event, reason=reason, context=context, fields={
        "request": request, "actor": actor, "subject": subject, "session": session, "organization": organization})
    return error


def _refusal_row(error: ApiError, *, event: EventType, reason: str | None, fields: dict[str, Any],
                 context: dict[str, Any]) -> AuditEvent:
    """The one refusal row. ``reason`` is always the refusal's (a context key of that name is replaced),
    or none at all with ``NO_REASON``."""
    context = {**context, **(getattr(error, "audit_context", None) or {})}
    if reason is NO_REASON:
        context.pop("reason", None)
    else:
        context["reason"] = reason or getattr(error, "audit_reason", None) or error.code
    return audit_record(event=event, success=False, **fields, **context)
