"""Django's PostgreSQL backend, with a deadline on every wait for the server.

A database that accepts connections and never answers (a stuck failover, a full disk, a partition
behind a proxy that still ACKs) is not caught by TCP: the kernel acknowledges, the process waits.
``statement_timeout`` does not help either, since the server never sees the query. So every wait of a
connection for the server (query, commit, rollback, the health check of a persistent connection) gets a
client-side timeout: the statement timeout plus a margin (``DATABASES["default"]["CLIENT_DEADLINE"]``,
seconds). When it passes, the connection is closed (its state is unknown) and the wait raises
``OperationalError``, which the error handler answers with 503 (core/outage.py). Connecting is bounded
by libpq's ``connect_timeout`` (``OPTIONS``), which psycopg enforces itself.

A server that is slow but alive gets the server-side ``statement_timeout`` first (sent at connect,
config/settings.py), so the usual case ends with a clean ``QueryCanceled`` on a reusable connection.
"""

from __future__ import annotations

import datetime
import logging
import select
import time

import psycopg
from django.db.backends.postgresql import base
from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.types.datetime import TimestamptzLoader

from core.database import deadline, thread_deadline

logger = logging.getLogger(__name__)
HEALTH_CHECK_SECONDS = 1.0  # the "SELECT 1" of a persistent connection before its first use in a request
# A connection the server answered this recently is not asked "SELECT 1" again before a request uses it
# (HikariCP's aliveBypassWindowMs, 500 ms by default): under load every request would otherwise pay one more
# round trip. Should the server have gone away in between, that request's first statement fails at once
# (or within the deadline), it answers 503, and the connection is closed after the request as before.
HEALTH_CHECK_BYPASS_SECONDS = 0.5


class DeadlineConnection(psycopg.Connection):
    """A psycopg connection whose waits for the server end after ``deadline`` seconds."""

    deadline: float | None = None
    answered_at: float = 0.0  # time.monotonic() of the server's last answer
    # HotCursor's statements prepared on this connection: (SQL, parameter types) -> statement name; and how
    # many it has prepared (each name is new, even after a DEALLOCATE ALL that might not have reached it)
    hot_statements: dict[tuple[str, tuple[int, ...]], bytes] | None = None
    hot_prepared: int = 0

    def _limit(self) -> float | None:
        """How long a wait for the server may last: the connection's deadline, narrowed by this thread's."""
        limit = self.deadline
        narrowed = thread_deadline()
        if narrowed is not None:
            limit = narrowed if limit is None else min(limit, narrowed)
        return limit

    def wait(self, gen, interval=None, timeout=None):
        limit = self._limit()
        if limit is not None:
            timeout = limit if timeout is None else min(timeout, limit)
        try:
            if interval is None:
                result = super().wait(gen, timeout=timeout)
            else:
                result = super().wait(gen, interval=interval, timeout=timeout)
            self.answered_at = time.monotonic()
            return result
        except errors._WaitTimeout:
            # The server did not answer in time: what the connection is in the middle of is unknown.
            self.pgconn.finish()
            raise errors.OperationalError(f"the database did not answer within {timeout:g} s") from None

    def _deallocate(self, name):
        """psycopg's ``DEALLOCATE`` of its prepared statements: ``None`` (``DEALLOCATE ALL``, which it sends
        after a rollback or a DROP/ALTER, even to a savepoint) ends HotCursor's statements too, so they are
        forgotten with it and prepared again at their next use."""
        if name is None:
            self.hot_statements = None
        return super()._deallocate(name)

    def results(self) -> list:
        """The results of the statement just sent on ``pgconn`` (HotCursor's), with the same deadline as
        ``wait``: libpq's calls in a plain ``select`` loop, which psycopg's generator machinery (its
        ``execute`` generator driven by ``waiting.wait``) costs 20 us of CPU more per statement."""
        limit = self._limit()
        pgconn = self.pgconn
        ends = None if limit is None else time.monotonic() + limit
        while pgconn.flush():  # non-blocking: what is left of the statement to send
            self._ready(ends, limit, write=True)
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                break
            self._ready(ends, limit, write=False)
        results = []
        while (result := pgconn.get_result()) is not None:
            results.append(result)
            if pgconn.is_busy():  # another statement's result still to come (never for one statement)
                self._ready(ends, limit, write=False)
                pgconn.consume_input()
        self.answered_at = time.monotonic()
        return results

    def _ready(self, ends: float | None, limit: float | None, *, write: bool) -> None:
        """Wait until the socket can be written (``write``) or read, until ``ends``; past it, as ``wait``."""
        fileno = self.pgconn.socket
        remaining = None if ends is None else max(0.0, ends - time.monotonic())
        readable, writable, _ = select.select([] if write else [fileno], [fileno] if write else [], [], remaining)
        if not readable and not writable:
            self.pgconn.finish()
            raise errors.OperationalError(f"the database did not answer within {limit:g} s")


class PreparingCursor(base.ServerBindingCursor):
    """Binds its parameters on the server and prepares every statement it runs: the server parses and
    plans a statement once per connection, then only binds and executes it (psycopg keeps the prepared
    statements per connection, the least recently used of ``prepared_max`` go). For the statements of the
    hot paths (core/prepared.py): the session lookup behind every bearer call is a three-table join whose
    planning was most of PostgreSQL's work for it, 0.66 ms of server CPU per call against 0.15 ms
    prepared (docs/benchmarks.md). Django's own cursors keep binding on the client, which never prepares."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


class KeptCursor(PreparingCursor):
    """The PreparingCursor a connection keeps for its hot statements (``DatabaseWrapper.prepared_cursor``):
    closing it only ends one use. A psycopg cursor built for each statement (its adapters, Django's
    timezone check, the close) was work on every request for nothing; the next ``execute`` replaces the
    previous results, and the connection's end ends it. ``hot_transformer``: the one psycopg Transformer
    (this cursor's adapters) of HotCursor's statements."""

    def __init__(self, connection, *args, **kwargs):
        super().__init__(connection, *args, **kwargs)
        self.hot_transformer = Transformer(self)

    def close(self):
        pass


class HotCursor:
    """What Django's ``CursorWrapper`` does for one statement of core/prepared.py (errors mapped to
    ``django.db`` ones, a broken transaction refused) without building a wrapper and an error-mapping
    closure on every call. Used only when nothing observes the statements (no query log, no execute
    wrapper: tests and DEBUG get Django's own wrappers, which count and log them).

    The statement itself goes to libpq through psycopg's own parts, not through its cursor
    (``_execute_prepared``): psycopg's ``Cursor.execute`` is about 43 us of Python per statement on this
    machine (a new Transformer per statement, the query converted again, its prepared-statement
    bookkeeping), against about 44 us for the whole look-up done this way (docs/benchmarks.md, ninth
    pass). The exception: the first statement of a transaction, for which psycopg's cursor sends the
    ``BEGIN`` (Django's ``atomic`` leaves that to it) and the statements that a plain split on ``%s`` does
    not describe (a literal ``%``)."""

    __slots__ = ("cursor", "db", "_rows", "_rowcount")

    def __init__(self, cursor, db):
        self.cursor, self.db = cursor, db
        self._rows: list | None = None
        self._rowcount = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def execute(self, sql, params=None):
        self.db.validate_no_broken_transaction()
        with self.db.wrap_database_errors:
            connection = self.cursor.connection
            if ((connection.autocommit or connection.pgconn.transaction_status != pq.TransactionStatus.IDLE)
                    and "%%" not in sql and "%(" not in sql):
                self._rows, self._rowcount = _execute_prepared(self.cursor, sql, params or ())
                return None
            self._rows = None
            return self.cursor.execute(sql, params)

    def fetchone(self):
        if self._rows is not None:
            return self._rows.pop(0) if self._rows else None
        with self.db.wrap_database_errors:
            return self.cursor.fetchone()

    def fetchmany(self, size):
        if self._rows is not None:
            rows, self._rows = self._rows[:size], self._rows[size:]
            return rows
        with self.db.wrap_database_errors:
            return self.cursor.fetchmany(size)

    def fetchall(self):
        if self._rows is not None:
            rows, self._rows = self._rows, []
            return rows
        with self.db.wrap_database_errors:
            return self.cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._rowcount if self._rows is not None else self.cursor.rowcount


def _execute_prepared(kept: KeptCursor, sql: str, params, *, again: bool = True) -> tuple[list, int]:
    """Run ``sql`` (Django's ``%s`` placeholders) as a statement prepared on the server once per connection
    and parameter types, as psycopg's cursor would with ``prepare=True``, with the same adapters (``kept``'s:
    its Transformer dumps the values and loads the rows) and the same client-side deadline
    (``DeadlineConnection.results``). Returns the rows (text format, as tuples) and the row count."""
    connection = kept.connection
    pgconn = connection.pgconn
    transformer = kept.hot_transformer
    values = transformer.dump_sequence(params, [PyFormat.AUTO] * len(params))
    types = tuple(transformer.types)
    statements = connection.hot_statements
    if statements is None:
        statements = connection.hot_statements = {}
    name = statements.get((sql, types))
    if name is None:
        pieces = sql.split("%s")
        if len(pieces) != len(params) + 1:
            raise errors.ProgrammingError(f"the statement has {len(pieces) - 1} placeholders for {len(params)} values")
        text = "".join(piece + (f"${number}" if number <= len(params) else "")
                       for number, piece in enumerate(pieces, start=1))
        name = f"_mana_hot_{connection.hot_prepared}".encode()
        connection.hot_prepared += 1
        pgconn.send_prepare(name, text.encode(connection.info.encoding), param_types=types)
        _result(connection, connection.results())
        statements[sql, types] = name
    pgconn.send_query_prepared(name, values, param_formats=transformer.formats)
    try:
        result = _result(connection, connection.results())
    except errors.InvalidSqlStatementName:
        # Deallocated by something other than psycopg (a DEALLOCATE or DISCARD sent as SQL): forget them
        # all and prepare this one again, where nothing else is lost (outside a transaction).
        connection.hot_statements = None
        if not again or not connection.autocommit or pgconn.transaction_status != pq.TransactionStatus.IDLE:
            raise
        return _execute_prepared(kept, sql, params, again=False)
    if result.status == pq.ExecStatus.TUPLES_OK:
        transformer.set_pgresult(result)
        return transformer.load_rows(0, result.ntuples, tuple), result.ntuples
    tuples = result.command_tuples
    return [], tuples if tuples is not None else -1


def _result(connection, results: list) -> pq.abc.PGresult:
    """The one result of a statement, or its error as psycopg raises it."""
    for result in results:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise errors.error_from_result(result, encoding=connection.info.encoding)
    if len(results) != 1 or results[0].status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        raise errors.InternalError(f"unexpected results: {[pq.ExecStatus(r.status).name for r in results]}")
    return results[0]


# psycopg's own text loader of timestamptz, C-optimised with psycopg[binary] (0.16 us a value against 2.6 us for
# Django's, measured here). Django registers a Python subclass of it that replaces the tzinfo of every value
# with its own UTC, which leaves the C loader out (ten values in the row of every bearer call). On a
# connection whose TimeZone is UTC the C loader's values are the same, with the same tzinfo object
# (datetime.timezone.utc): tests/core/test_timestamptz_loader.py.
_FAST_TIMESTAMPTZ = psycopg.adapters.get_loader(base.TIMESTAMPTZ_OID, base.Format.TEXT) or TimestamptzLoader


class UtcTimestamptzLoader:
    """Registered in place of Django's loader on a UTC connection; makes psycopg's own (the C class cannot be
    subclassed). ``timezone`` is what Django's create_cursor compares before it registers its loader again."""

    timezone = datetime.UTC
    format = _FAST_TIMESTAMPTZ.format

    def __new__(cls, oid, context=None):
        return _FAST_TIMESTAMPTZ(oid, context)


class DatabaseOperations(base.DatabaseOperations):
    def last_executed_query(self, cursor, sql, params):
        """The SQL with its values, for the query log (DEBUG, tests), for a PreparingCursor too: Django reads
        it off a client-binding cursor, and a server-binding one has only the ``$1`` form (as Django does
        with ``server_side_binding``)."""
        if isinstance(cursor, PreparingCursor):
            try:
                return self.compose_sql(sql, params)
            except errors.DataError:
                return None
        return super().last_executed_query(cursor, sql, params)


_startup_options_refused = False  # a pooler in front refused the ``options`` startup parameter


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    _kept_cursor: KeptCursor | None = None  # prepared_cursor's, for this connection (Django's wrappers are per thread)
    _kept_timezone = None

    def get_new_connection(self, conn_params):
        global _startup_options_refused
        if _startup_options_refused and "options" in conn_params:
            conn_params = {key: value for key, value in conn_params.items() if key != "options"}
        try:
            connection = super().get_new_connection(conn_params)
        except psycopg.OperationalError as exc:
            # PgBouncer refuses startup options it does not know ("unsupported startup parameter: options")
            # unless told to ignore them: connect without ours, once told (docs/deploy.md, "PgBouncer").
            if "options" not in conn_params or "unsupported startup parameter" not in str(exc):
                raise
            _startup_options_refused = True
            logger.warning("the database (a pooler?) refused the statement_timeout startup option (and "
                           "plan_cache_mode with it); connecting without them: set AUTH_DB_STATEMENT_TIMEOUT_STARTUP="
                           "false and the role's statement_timeout and plan_cache_mode (docs/deploy.md). The "
                           "client-side deadline still applies.")
            conn_params = {key: value for key, value in conn_params.items() if key != "options"}
            connection = super().get_new_connection(conn_params)
        if type(connection) is psycopg.Connection:
            connection.__class__ = DeadlineConnection  # same layout: the subclass only adds a method
            connection.deadline = self.settings_dict.get("CLIENT_DEADLINE")
        if self.settings_dict.get("PREPARED_STATEMENTS", True) and connection.prepare_threshold is None:
            # Django turns psycopg's preparing off (None), which refuses even an explicit prepare=True. Its own
            # cursors bind on the client and never prepare whatever this says; PreparingCursor asks for it.
            connection.prepare_threshold = 5
        return connection

    def init_connection_state(self):
        super().init_connection_state()  # sets the connection's TimeZone to Django's (UTC) when it differs
        if self.timezone is datetime.UTC and self.connection.info.parameter_status("TimeZone") == "UTC":
            self.connection.adapters.register_loader("timestamptz", UtcTimestamptzLoader)

    def prepared_cursor(self):
        """A cursor whose statements are prepared on the server: the connection's one ``KeptCursor``, with
        Django's wrappers (query logging, execute wrappers, error mapping) when something observes the
        statements, else with ``HotCursor``'s error mapping alone (7% of a refresh's CPU in this process and
        of a bearer GET me, docs/benchmarks.md seventh pass). A plain ``cursor()`` when prepared statements
        are off (``DATABASES["default"]["PREPARED_STATEMENTS"]``: behind a pooler in transaction mode,
        consecutive transactions may run on server connections that never saw them)."""
        if not self.settings_dict.get("PREPARED_STATEMENTS", True):
            return self.cursor()
        self.close_if_health_check_failed()
        self.ensure_connection()
        kept = self._kept_cursor
        if kept is None or kept.connection is not self.connection or self._kept_timezone != self.timezone:
            with self.wrap_database_errors:
                kept = KeptCursor(self.connection)
                loader = self.connection.adapters.get_loader(base.TIMESTAMPTZ_OID, base.Format.TEXT)
                if self.timezone != loader.timezone:  # as create_cursor does
                    base.register_tzloader(self.timezone, kept)
            self._kept_cursor, self._kept_timezone = kept, self.timezone
        if self.queries_logged or self.execute_wrappers:
            return self._prepare_cursor(kept)
        self.validate_thread_sharing()
        return HotCursor(kept, self)

    def close_if_health_check_failed(self):
        connection = self.connection
        if (connection is not None and self.health_check_enabled and not self.health_check_done
                and not connection.broken and not connection.closed
                and time.monotonic() - getattr(connection, "answered_at", 0.0) < HEALTH_CHECK_BYPASS_SECONDS):
            self.health_check_done = True  # answered a moment ago: no "SELECT 1" (see above)
            return
        super().close_if_health_check_failed()

    def is_usable(self):
        # CONN_HEALTH_CHECKS: a dead or hung persistent connection is found in a second and replaced.
        with deadline(HEALTH_CHECK_SECONDS):
            return super().is_usable()
