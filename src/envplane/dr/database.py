"""Put a restored database in place of the instance's own, never losing the old one first.

The dump is restored into a new database `{name}_restore` owned by the instance's role
(`pg_restore --single-transaction`, as that role); only when that succeeded is the old
database dropped and the new one renamed to the instance's name. A restore that fails —
a bad stream, a wrong key, a server that goes away — leaves the instance's database as it
was. DROP and RENAME cannot share a transaction in PostgreSQL: a run killed between them
leaves the data in `{name}_restore`, which the next restore replaces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from envplane.backends.database import postgres_sql as q
from envplane.backends.database.names import check_name
from envplane.errors import BackendError
from envplane.names import sql_identifier
from envplane.secret import Secret, mask


def staging_name(name: str) -> str:
    return sql_identifier(name, "restore")


def prepare(admin: Secret, name: str) -> str:
    """A fresh, empty `{name}_restore` owned by role `name`, closed to other roles."""
    temp = check_name(staging_name(name))
    with _admin(admin) as conn:
        _run(conn, admin, q.drop_database(temp))  # a leftover of a restore killed before its swap
        _run(conn, admin, q.create_database(temp, name))
        _run(conn, admin, q.revoke_public(temp))
    return temp


def swap(admin: Secret, name: str) -> None:
    """Drop the instance's database and give its name to the restored one."""
    temp = staging_name(name)
    with _admin(admin) as conn:
        _run(conn, admin, q.drop_database(name))
        _run(conn, admin, sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(temp),
                                                                           sql.Identifier(name)))


def discard(admin: Secret, name: str) -> None:
    """Drop `{name}_restore` after a failed restore."""
    with _admin(admin) as conn:
        _run(conn, admin, q.drop_database(staging_name(name)))


def restore(admin: Secret, name: str, load: Callable[[str], None]) -> None:
    """prepare, `load(temp database)`, swap; on failure the temp database goes, the old stays."""
    temp = prepare(admin, name)
    try:
        load(temp)
    except BaseException:
        with contextlib.suppress(BackendError):  # the load's error is the one to report
            discard(admin, name)
        raise
    swap(admin, name)


def first_value(conninfo: str, password: Secret, query: str) -> str | None:
    """The first column of the first row of `query`, as text (drill checks); None: no row."""
    try:
        with psycopg.connect(conninfo, password=password.reveal(), connect_timeout=10,
                             autocommit=True) as conn:
            row = conn.execute(query.encode()).fetchone()  # the spec's own SQL, as the instance's role
    except psycopg.Error as err:
        raise BackendError(f"query failed: {mask(str(err).strip().splitlines()[0], [password])}") from None
    return None if row is None or row[0] is None else str(row[0])


@contextmanager
def _admin(admin: Secret) -> Iterator[psycopg.Connection[Any]]:
    try:
        conn = psycopg.connect(admin.reveal(), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as err:
        raise BackendError(f"cannot connect to PostgreSQL: {mask(str(err).strip(), [admin])}") from None
    with conn:
        yield conn


def _run(conn: psycopg.Connection[Any], admin: Secret, statement: sql.Composed) -> None:
    try:
        conn.execute(statement)
    except psycopg.Error as err:
        raise BackendError(f"PostgreSQL refused {statement.as_string(conn)}: "
                           f"{mask(str(err).strip().splitlines()[0], [admin])}",
                           "the admin role needs CREATEDB and membership of the instance's role "
                           "(`envplane provision` grants it)") from None

