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
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import get_related_populators


class _Compiled:
    __slots__ = ("sql", "params", "position", "compiler", "converters", "init_list", "start", "end", "annotations",
                 "klass_info")

    def __init__(self, queryset: QuerySet, sentinel_db_value, db: str):
        compiler = queryset.query.get_compiler(using=db)
        sql, params = compiler.as_sql()
        positions = [i for i, param in enumerate(params) if param == sentinel_db_value]
        if len(positions) != 1:
            raise ValueError(f"the placeholder must occur exactly once in the query's parameters: {params!r}")
        self.sql, self.params, self.position, self.compiler = sql, list(params), positions[0], compiler
        self.klass_info = compiler.klass_info
        self.converters = compiler.get_converters([column[0] for column in compiler.select[:compiler.col_count]])
        fields = self.klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in compiler.select[self.start:self.end]]
        self.annotations = dict(compiler.annotation_col_map or {})


class PreparedQuery:
    """``build(value)`` as a queryset, evaluated by ``first(value)`` without compiling it again.

    ``build`` must return the same query for every value, with ``value`` compared against exactly one
    field (``field``, a field of the queryset's model: it turns the value into the database's form).
    The queryset must not slice or order by a random value; ``first`` returns its first row or None."""

    def __init__(self, build: Callable[[Any], QuerySet], *, field: str, sentinel: Any):
        self._build, self._sentinel = build, sentinel
        self._field = build(sentinel).model._meta.get_field(field)
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def _compiled_for(self, db: str) -> _Compiled:
        compiled = self._compiled.get(db)
        if compiled is None:
            with self._lock:
                connection = connections[db]
                queryset = self._build(self._sentinel)
                compiled = _Compiled(queryset, self._field.get_db_prep_value(self._sentinel, connection), db)
                self._compiled[db] = compiled
        return compiled

    def first(self, value, *, using: str = "default"):
        compiled = self._compiled_for(using)
        connection = connections[using]
        params = list(compiled.params)
        params[compiled.position] = self._field.get_db_prep_value(value, connection)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if compiled.converters:  # as SQLCompiler.apply_converters, with this thread's connection
            row = list(row)
            for position, (converters, expression) in compiled.converters.items():
                value = row[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[position] = value
        obj = compiled.klass_info["model"].from_db(using, compiled.init_list, row[compiled.start:compiled.end])
        for populator in get_related_populators(compiled.klass_info, compiled.compiler.select, using):
            populator.populate(row, obj)
        for name, position in compiled.annotations.items():
            setattr(obj, name, row[position])
        return obj
