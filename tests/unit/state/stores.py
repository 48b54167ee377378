"""Stores for state tests: SQLite in tmp_path, or a fresh PostgreSQL database per test.

PostgreSQL comes from ENVPLANE_TEST_POSTGRES_URL (scripts/services/postgres.sh prints
it); without it the PostgreSQL cases skip, or fail under CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from envplane.state.audit_key import AuditKey
from envplane.state.db import Store, open_store
from tests.support import need

POSTGRES_ENV = "ENVPLANE_TEST_POSTGRES_URL"
HOW = "run scripts/services/postgres.sh and export the URL it prints"


class FakeClock:
    """Each call returns a moment one second after the last one."""

    def __init__(self, start: datetime = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    need("PostgreSQL", bool(url), f"set {POSTGRES_ENV}: {HOW}")
    return url


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty database for one test and drop it afterwards; yields its URL."""
    base = postgres_url()
    name = f"envplane_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


TEST_KEY = AuditKey(b"k" * 32, "the tests' audit key")


@contextmanager
def store_for(kind: str, tmp_path: Path) -> Iterator[tuple[Store, str | None]]:
    """Yield an open store of `kind` ("sqlite" or "postgres") and the URL it used."""
    if kind == "sqlite":
        store = open_store(tmp_path, audit_key=TEST_KEY)
        try:
            yield store, None
        finally:
            store.close()
        return
    with fresh_postgres_database() as url:
        store = open_store(tmp_path, url, TEST_KEY)
        try:
            yield store, url
        finally:
            store.close()
