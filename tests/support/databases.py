"""Databases and services for the tests that start real server processes (tests/e2e, tests/faults,
tests/cluster): ``services_or_skip`` and ``scratch_database``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def services_or_skip(what: str) -> tuple[str, str]:
    """(DATABASE_URL, REDIS_URL) of the run, or skip ``what`` ("fault tests", ...) without both."""
    url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not is_postgres(url) or not redis_url:
        pytest.skip(f"{what} need DATABASE_URL (PostgreSQL) and REDIS_URL")
    return url, redis_url


@contextmanager
def scratch_database(url: str, label: str) -> Iterator[str]:
    """The URL of a new PostgreSQL database beside ``url``'s, named after it, ``label``, the process and a
    random suffix; dropped (its connections ended) when the block exits."""
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'mana'}_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"[:63]
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
