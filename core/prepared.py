"""A queryset of the hot paths compiled to SQL once, not on every request.

The ORM compiles a queryset each time it is evaluated: for the session lookup behind every bearer call,
cookie request and refresh (a three-table ``select_related`` with a subquery) that was about 1.5 ms of
CPU per request, several times the cost of running the statement. ``PreparedQuery`` keeps the one
definition of the query as an ordinary queryset, compiles it once per database with a placeholder value,
and afterwards only swaps the value in, runs the SQL, and builds the instances exactly as Django's
``ModelIterable`` does (related objects of ``select_related`` cached on the instance, annotations set as
attributes, deferred fields loaded on first access). It relies on the compiler's attributes that
``ModelIterable`` itself uses (``select``, ``klass_info``, ``annotation_col_map``), which is why Django is
pinned; tests/core/test_prepared.py holds it to the plain queryset's results.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, models, transaction
from django.db.models import Model, QuerySet, sql
from django.db.models.base import ModelState
from django.db.models.query import RelatedPopulator
from django.db.models.signals import post_init, pre_init


class _Compiled:
    __slots__ = ("sql", "params", "positions", "compiler", "converters", "init_list", "start", "end", "annotations",
                 "klass_info", "populators")

    def __init__(self, queryset: QuerySet, placeholders: list, db: str):
        compiler = queryset.query.get_compiler(using=db)
        sql, params = compiler.as_sql()
        self.positions = []
        for placeholder in placeholders:
            found = [i for i, param in enumerate(params) if param == placeholder]
            if not found:
                raise ValueError(f"the placeholder {placeholder!r} is not among the query's parameters: {params!r}")
            self.positions.append(found)
        if len({i for found in self.positions for i in found}) != sum(len(found) for found in self.positions):
            raise ValueError(f"two placeholders compare equal in the query's parameters: {params!r}")
        self.sql, self.params, self.compiler = sql, list(params), compiler
        self.klass_info = compiler.klass_info
        self.converters = compiler.get_converters([column[0] for column in compiler.select[:compiler.col_count]])
        fields = self.klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in compiler.select[self.start:self.end]]
        self.annotations = dict(compiler.annotation_col_map or {})
        # Built once: a RelatedPopulator keeps nothing of the rows it fills (ModelIterable reuses its own for
        # every row of a query), and building them was a tenth of the session lookup's CPU.
        self.populators = _related_populators(self.klass_info, compiler.select, db)


class PreparedQuery:
    """``build(**values)`` as a queryset, evaluated by ``first(**values)`` or ``all(**values)`` without
    compiling it again.

    ``params`` names each value with the model field it is compared against (a field name of the
    queryset's model, or a Field: it turns the value into the database's form) and a placeholder value
    of that type, distinct from every other parameter of the query. ``build`` must give the same query
    for every value (a value may occur several times); ``field``/``sentinel`` is the one-value form,
    whose value is passed positionally."""

    def __init__(self, build: Callable[..., QuerySet], *, params: dict[str, tuple[Any, Any]] | None = None,
                 field: str | None = None, sentinel: Any = None):
        self._build, self._positional = build, params is None
        params = {"value": (field, sentinel)} if params is None else params
        model = (build(sentinel) if self._positional else build(**{k: v[1] for k, v in params.items()})).model
        self._params = [(name, model._meta.get_field(f) if isinstance(f, str) else f, placeholder)
                        for name, (f, placeholder) in params.items()]
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def _compiled_for(self, db: str) -> _Compiled:
        compiled = self._compiled.get(db)
        if compiled is None:
            with self._lock:
                connection = connections[db]
                placeholders = {name: placeholder for name, _, placeholder in self._params}
                queryset = self._build(placeholders["value"]) if self._positional else self._build(**placeholders)
                compiled = _Compiled(queryset, [field.get_db_prep_value(field.get_prep_value(placeholder), connection,
                                                                        prepared=True)
                                                for _, field, placeholder in self._params], db)
                self._compiled[db] = compiled
        return compiled

    def _rows(self, args, kwargs, using: str, limit: int | None):
        compiled = self._compiled_for(using)
        connection = connections[using]
        values = {"value": args[0]} if self._positional else kwargs
        params = list(compiled.params)
        for (name, field, _), positions in zip(self._params, compiled.positions, strict=True):
            prepared = _db_value(field, values[name], connection, lookup=True)
            for position in positions:
                params[position] = prepared
        with _cursor(connection) as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchmany(limit) if limit else cursor.fetchall()
        return compiled, connection, rows

    def queryset(self, *args, **kwargs) -> QuerySet:
        """The queryset itself, for a value the prepared statement cannot take (e.g. None, where the ORM
        writes IS NULL)."""
        return self._build(*args) if self._positional else self._build(**kwargs)

    def first(self, *args, using: str = "default", **kwargs):
        compiled, connection, rows = self._rows(args, kwargs, using, 1)
        return self._instance(compiled, connection, rows[0], using) if rows else None

    def all(self, *args, using: str = "default", **kwargs) -> list:
        compiled, connection, rows = self._rows(args, kwargs, using, None)
        return [self._instance(compiled, connection, row, using) for row in rows]

    @staticmethod
    def _instance(compiled: _Compiled, connection, row, using: str):
        if compiled.converters:  # as SQLCompiler.apply_converters, with this thread's connection
            row = list(row)
            for position, (converters, expression) in compiled.converters.items():
                value = row[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[position] = value
        obj = _from_db(compiled.klass_info["model"], using, compiled.init_list, row[compiled.start:compiled.end])
        for populator in compiled.populators:
            populator.populate(row, obj)
        for name, position in compiled.annotations.items():
            setattr(obj, name, row[position])
        return obj


_MODEL_FROM_DB = Model.from_db.__func__


def _from_db(model, db: str, field_names: list[str], values) -> Model:
    """``model.from_db(db, field_names, values)`` without ``Model.__init__``: the instance Django would
    build (each value in the instance's ``__dict__`` under its field's attname, a field left out stays
    deferred, ``_state`` not adding and of ``db``), built directly, at a third of the cost (``__init__``
    walks every field through ``setattr`` and sends pre_init and post_init). Django's own way whenever
    it could differ: a model with its own ``from_db``, or a receiver of either signal for it."""
    if (model.from_db.__func__ is not _MODEL_FROM_DB or pre_init.has_listeners(model)
            or post_init.has_listeners(model)):
        return model.from_db(db, field_names, values)
    obj = model.__new__(model)
    state = ModelState()
    state.adding, state.db = False, db
    attributes = obj.__dict__
    attributes["_state"] = state
    attributes.update(zip(field_names, values, strict=True))
    return obj


class _RelatedPopulator(RelatedPopulator):
    """Django's populator of a ``select_related`` object, building it with ``_from_db``."""

    def __init__(self, klass_info, select, db):
        super().__init__(klass_info, select, db)
        self.related_populators = _related_populators(klass_info, select, db)

    def populate(self, row, from_obj):  # RelatedPopulator.populate, but for _from_db
        obj_data = self.reorder_for_init(row) if self.reorder_for_init else row[self.cols_start:self.cols_end]
        if obj_data[self.pk_idx] is None:
            obj = None
        else:
            obj = _from_db(self.model_cls, self.db, self.init_list, obj_data)
            for populator in self.related_populators:
                populator.populate(row, obj)
        self.local_setter(from_obj, obj)
        if obj is not None:
            self.remote_setter(obj, from_obj)


def _related_populators(klass_info, select, db) -> list[_RelatedPopulator]:
    """``django.db.models.query.get_related_populators`` with ``_RelatedPopulator``."""
    return [_RelatedPopulator(related, select, db) for related in klass_info.get("related_klass_infos", [])]


def _sentinels(fields, offset: int) -> list:
    """A distinct placeholder value per field, of the field's type (compiled once, then found in the params)."""
    values = []
    for i, field in enumerate(fields, start=offset):
        internal = field.get_internal_type()
        if internal == "UUIDField":
            values.append(uuid.UUID(int=i + 1))
        elif internal == "DateTimeField":
            values.append(datetime(1901, 1, 1, tzinfo=UTC) + timedelta(seconds=i))
        elif internal in ("CharField", "TextField", "GenericIPAddressField"):
            values.append(f"prepared:{i}")
        else:
            raise ValueError(f"no placeholder for a {internal} ({field.name})")
    return values


class PreparedUpdate:
    """``Model.objects.filter(<where>=...).update(<fixed expressions>, <set fields>=...)`` compiled once per
    database: ``execute(where_values, set_values)`` returns the number of rows changed. The placeholders are
    values of each field's type (UUID, datetime, text), each found once in the compiled parameters."""

    def __init__(self, model, *, where: tuple[str, ...], set: tuple[str, ...], fixed: dict | None = None):
        self._model, self._where, self._set, self._fixed = model, where, set, dict(fixed or {})
        meta = model._meta
        self._where_fields = [meta.pk if name == "pk" else meta.get_field(name) for name in where]
        self._set_fields = [meta.get_field(name) for name in set]
        self._compiled: dict[str, tuple[str, list, list[int], list[int]]] = {}
        self._asynchronous_text: dict[str, str] = {}
        self._lock = threading.Lock()

    def _compiled_for(self, db: str):
        compiled = self._compiled.get(db)
        if compiled is None:
            with self._lock:
                connection = connections[db]
                where_values = _sentinels(self._where_fields, 0)
                set_values = _sentinels(self._set_fields, len(where_values))
                where = dict(zip(self._where, where_values, strict=True))
                query = self._model._default_manager.filter(**where).query.chain(sql.UpdateQuery)
                query.add_update_values({**self._fixed, **dict(zip(self._set, set_values, strict=True))})
                text, params = query.get_compiler(db).as_sql()
                params = list(params)
                where_positions = [
                    _position(params, f.get_db_prep_value(f.get_prep_value(v), connection, prepared=True))
                    for f, v in zip(self._where_fields, where_values, strict=True)]
                set_positions = [_position(params, f.get_db_prep_save(v, connection))
                                 for f, v in zip(self._set_fields, set_values, strict=True)]
                compiled = self._compiled[db] = (text, params, where_positions, set_positions)
        return compiled

    def params(self, where_values, set_values, *, using: str = "default") -> list:
        """The statement's parameters for these values."""
        _, template, where_positions, set_positions = self._compiled_for(using)
        connection = connections[using]
        params = list(template)
        for field, position, value in zip(self._where_fields, where_positions, where_values, strict=True):
            params[position] = _db_value(field, value, connection, lookup=True)
        for field, position, value in zip(self._set_fields, set_positions, set_values, strict=True):
            params[position] = _db_value(field, value, connection)
        return params

    def execute(self, where_values, set_values, *, using: str = "default", asynchronous_commit: bool = False) -> int:
        """``asynchronous_commit``: as for ``PreparedUpdateThenInsert`` (PostgreSQL, outside a transaction)."""
        connection = connections[using]
        text = self._compiled_for(using)[0]
        if asynchronous_commit and connection.vendor == "postgresql" and connection.get_autocommit():
            text = self._asynchronous(text)
        params = self.params(where_values, set_values, using=using)
        with transaction.mark_for_rollback_on_error(using=using), _cursor(connection) as cursor:
            cursor.execute(text, params)
            return cursor.rowcount

    def _asynchronous(self, text: str) -> str:
        """The UPDATE with ``synchronous_commit`` off for its own implicit transaction: a one-row CTE that sets
        it (volatile: evaluated once), joined by ``FROM``, so the statement stays one round trip and leaves no
        session state behind (PgBouncer's transaction mode)."""
        compiled = self._asynchronous_text.get(text)
        if compiled is None:
            # Django's UPDATE is "UPDATE t SET ... WHERE ..."; a SET or WHERE of another shape (a subquery)
            # would be spliced wrongly, so refuse it here rather than send broken SQL.
            if not text.startswith("UPDATE ") or text.count(" WHERE ") != 1:
                raise ValueError(f"cannot add the asynchronous commit to this UPDATE: {text[:200]}")
            head, where = text.split(" WHERE ", 1)
            compiled = self._asynchronous_text[text] = (
                "WITH asynchronous AS (SELECT set_config('synchronous_commit', 'off', true)) "
                f"{head} FROM asynchronous WHERE {where}")
        return compiled


class PreparedInsert:
    """``instance.save(force_insert=True)`` compiled once per database: ``execute(instance)``. A primary key
    the database generates (an AutoField) is left out of the INSERT and read back with RETURNING, as the ORM
    does; a given one is written (no RETURNING). No signals are sent (nothing listens for these rows)."""

    def __init__(self, model):
        self._model = model
        meta = model._meta
        self._returning = meta.pk if getattr(meta.pk, "db_returning", False) else None
        self._fields = [field for field in meta.concrete_fields
                        if not field.generated and field is not self._returning]
        self._compiled: dict[str, str] = {}

    def params(self, instance, *, using: str = "default") -> list:
        """The statement's parameters for ``instance`` (each field's ``pre_save``, as ``save`` does)."""
        connection = connections[using]
        return [_db_value(field, field.pre_save(instance, True), connection) for field in self._fields]

    def execute(self, instance, *, using: str = "default") -> None:
        connection = connections[using]
        text = self._compiled.get(using)
        if text is None:
            if self._returning is not None and not connection.features.can_return_columns_from_insert:
                raise ValueError(f"{connection.vendor} cannot return the generated primary key of an INSERT")
            query = sql.InsertQuery(self._model)
            query.insert_values(self._fields, [instance])
            compiler = query.get_compiler(using)
            compiler.returning_fields = [self._returning] if self._returning is not None else None
            (text, _), = compiler.as_sql()
            self._compiled[using] = text
        params = self.params(instance, using=using)
        with transaction.mark_for_rollback_on_error(using=using), _cursor(connection) as cursor:
            cursor.execute(text, params)
            if self._returning is not None:
                value = cursor.fetchone()[0]
                for converter in self._returning.get_db_converters(connection):
                    value = converter(value, self._returning, connection)
                setattr(instance, self._returning.attname, value)
        instance._state.adding, instance._state.db = False, using


class PreparedUpdateThenInsert:
    """A ``PreparedUpdate`` and, only when it changed a row, a ``PreparedInsert``: one statement on
    PostgreSQL (``WITH changed AS (UPDATE ... RETURNING 1) INSERT ... SELECT ... FROM changed``), so outside a
    transaction it is one round trip and one commit, and inside one it is still both or neither. Elsewhere
    (SQLite) the two statements in a transaction of their own. ``execute(where_values, set_values, instance)``
    returns whether the update changed a row (and the row was inserted). The update's ``where`` must name at
    most one row (its primary key): one row inserted per row changed.

    ``asynchronous_commit=True`` (PostgreSQL, outside a transaction): the statement's own commit returns
    without waiting for its WAL to reach the disk (``set_config('synchronous_commit', 'off', true)`` in the
    statement, so it holds for this one implicit transaction only: no session state, PgBouncer's
    transaction mode is fine). A crash of the database server within about three ``wal_writer_delay``
    (600 ms by default) may lose it; the database stays consistent (both writes or neither), and any later
    synchronous commit makes it durable. Inside a transaction it is ignored: the transaction's own commit
    decides. For writes whose loss is harmless only (sessions_app.services: a routine refresh)."""

    def __init__(self, update: PreparedUpdate, insert: PreparedInsert):
        if "pk" not in update._where:
            raise ValueError("the update of a PreparedUpdateThenInsert must be by primary key")
        if any(hasattr(field, "get_placeholder") for field in insert._fields):
            raise ValueError("a field with its own SQL placeholder cannot be inserted by a PreparedUpdateThenInsert")
        self._update, self._insert = update, insert
        self._compiled: dict[tuple[str, bool], str] = {}

    def _sql(self, using: str, asynchronous_commit: bool) -> str:
        text = self._compiled.get((using, asynchronous_commit))
        if text is None:
            connection = connections[using]
            update, _, _, _ = self._update._compiled_for(using)
            quote = connection.ops.quote_name
            columns = ", ".join(quote(field.column) for field in self._insert._fields)
            values = ", ".join(["%s"] * len(self._insert._fields))
            # set_config is volatile: its CTE is evaluated once, before the INSERT's row (it joins it)
            setting, joined = ("asynchronous AS (SELECT set_config('synchronous_commit', 'off', true)), ",
                               " CROSS JOIN asynchronous") if asynchronous_commit else ("", "")
            text = self._compiled[using, asynchronous_commit] = (
                f"WITH {setting}changed AS ({update} RETURNING 1) "
                f"INSERT INTO {quote(self._insert._model._meta.db_table)} ({columns}) "
                f"SELECT {values} FROM changed{joined}")
        return text

    def execute(self, where_values, set_values, instance, *, using: str = "default",
                asynchronous_commit: bool = False) -> bool:
        connection = connections[using]
        if connection.vendor != "postgresql":
            with transaction.atomic(using=using, savepoint=False):
                if not self._update.execute(where_values, set_values, using=using):
                    return False
                self._insert.execute(instance, using=using)
                return True
        text = self._sql(using, asynchronous_commit and connection.get_autocommit())
        params = self._update.params(where_values, set_values, using=using) + self._insert.params(instance,
                                                                                                 using=using)
        with transaction.mark_for_rollback_on_error(using=using), _cursor(connection) as cursor:
            cursor.execute(text, params)
            changed = cursor.rowcount
        if changed:
            instance._state.adding, instance._state.db = False, using
        return bool(changed)


# Django's field classes whose value for PostgreSQL (get_db_prep_save, and get_db_prep_value of
# get_prep_value for a lookup) is the value itself when it has this exact type: psycopg adapts it.
_PASSED_ON_POSTGRESQL = {models.CharField: str, models.TextField: str, models.DateTimeField: datetime,
                         models.UUIDField: uuid.UUID}


def _db_value(field, value, connection, *, lookup: bool = False):
    """What Django sends for ``value``: ``field.get_db_prep_save(value, connection)`` for a value written,
    ``get_db_prep_value(get_prep_value(value), prepared=True)`` for one compared (``lookup``). The value
    itself where Django would hand it over unchanged: on PostgreSQL, a ``str`` for a CharField or
    TextField, an aware ``datetime`` for a DateTimeField, a ``UUID`` for a UUIDField (and the same through
    a ForeignKey to one); each exactly Django's class, not a subclass that may prepare values its own way.
    Everything else goes through Django (a naive datetime, a string for a UUID, None, a lazy string, an
    expression). A refresh's ten values went through Django's chain of calls for nothing
    (tests/core/test_prepared.py compares the two for each case)."""
    target = field.target_field if type(field) is models.ForeignKey else field
    passed = _PASSED_ON_POSTGRESQL.get(type(target))
    if (passed is not None and type(value) is passed and connection.vendor == "postgresql"
            and (passed is not datetime or value.tzinfo is not None)):
        return value
    if lookup:
        return field.get_db_prep_value(field.get_prep_value(value), connection, prepared=True)
    return field.get_db_prep_save(value, connection)


def _cursor(connection):
    """A cursor whose statements the server prepares, where the backend offers one (core/database: PostgreSQL,
    unless PREPARED_STATEMENTS is off); elsewhere a plain one. These statements run on every request, so
    planning them once per connection is worth a server-side prepared statement each."""
    prepared = getattr(connection, "prepared_cursor", None)
    return prepared() if prepared is not None else connection.cursor()


def _position(params: list, value) -> int:
    positions = [i for i, param in enumerate(params) if param == value]
    if len(positions) != 1:
        raise ValueError(f"the placeholder {value!r} must occur exactly once in the parameters: {params!r}")
    return positions[0]
