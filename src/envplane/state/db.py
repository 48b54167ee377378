"""Open the state store: pick the database, connect, migrate to head.

SQLite (the default) lives at `{spec_dir}/.envplane/state.db`; PostgreSQL is used when
a URL is given (the CLI passes ENVPLANE_STATE_URL). Writes that must not interleave
(audit appends, lock changes, migrations) go through `Store.serialised`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from envplane.errors import StateError
from envplane.private import FILE_MODE, make_dirs, restrict
from envplane.state.location import exists, state_path

if TYPE_CHECKING:
    from envplane.state.audit_key import AuditKey

BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10
MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration. Checking it first spares every command Alembic's import
# (a quarter of a second) when the store is already current; a test keeps it true.
HEAD_REVISION = "0012"
_SERIALISE = "envplane_serialise"


@dataclass(frozen=True)
class Store:
    """An open state store. `where` names it for messages, with any password masked.

    `audit_key` chains the rows this store's audit log gets; a store opened only to read
    has none."""

    engine: Engine
    where: str
    audit_key: AuditKey | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._begin({}) as conn, _joined(conn) as session:
            yield session

    @contextmanager
    def serialised(self, name: str) -> Iterator[Session]:
        """Like `session`, but no two `serialised(name)` transactions run at once.

        SQLite: BEGIN IMMEDIATE takes the database write lock up front, so a
        read-then-write cannot race. PostgreSQL: a transaction advisory lock on `name`.
        """
        with self._begin({_SERIALISE: True}) as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _key(name)})
            with _joined(conn) as session:
                yield session

    @contextmanager
    def _begin(self, options: dict[str, Any]) -> Iterator[Connection]:
        with _unreachable_as_state_error(self.where), self.engine.connect() as plain:
            conn = plain.execution_options(**options)
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def _joined(conn: Connection) -> Iterator[Session]:
    """A session inside the connection's transaction; its changes are flushed before commit."""
    session = Session(bind=conn, expire_on_commit=False)
    try:
        yield session
        session.flush()
    finally:
        session.close()


def open_store(spec_dir: Path, url: str | None = None, audit_key: AuditKey | None = None) -> Store:
    """Open (creating if needed) the state store and migrate it to the latest schema.

    Only commands that write state call this: it creates `.envplane/` for SQLite.
    """
    target = database_url(spec_dir, url)
    if target.drivername == "sqlite":
        _make_folder(target)
        engine = create_engine(target)
        _tune_sqlite(engine)
    else:
        engine = create_engine(target, pool_pre_ping=True,
                               connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    store = Store(engine, _describe(engine.url), audit_key)
    try:
        migrate(store)
    except DatabaseError as error:  # e.g. SQLite's `file is not a database`: not a bug of ours
        engine.dispose()
        raise StateError(f"cannot read the state store at {store.where}: {_first_line(error.orig or error)}",
                         hint="restore it from a backup, or move it away to start an empty one") from error
    except BaseException:
        engine.dispose()
        raise
    return store


def open_existing(spec_dir: Path, url: str | None = None, audit_key: AuditKey | None = None
                  ) -> Store | None:
    """The state store when there is one, else None: a command that only reads says
    `nothing recorded yet` rather than create an empty store."""
    return open_store(spec_dir, url, audit_key) if exists(spec_dir, url) else None


def migrate(store: Store) -> None:
    """Bring the schema to head; a no-op when it is there already."""
    if _at_head(store):
        return
    with store.serialised("migrate") as session:
        _upgrade(store, session.connection())


def _at_head(store: Store) -> bool:
    try:
        with store.engine.connect() as conn:
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except Exception:
        return False  # no table yet, or unreadable: let the full upgrade decide and report
    return found == [HEAD_REVISION]


def _upgrade(store: Store, conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, "head")
    except CommandError as error:
        raise StateError(
            f"cannot migrate the state store at {store.where}: {error}",
            hint="the store may have been written by a newer envplane; upgrade envplane",
        ) from error
    except Exception as error:
        raise StateError(
            f"migrating the state store at {store.where} failed: {_first_line(error)}",
            hint="nothing was changed (migrations run in one transaction); "
            "check the database and retry, or run with --debug for details",
        ) from error


def database_url(spec_dir: Path, url: str | None = None) -> URL:
    """The SQLAlchemy URL of the store; pure, so read-only commands can name it safely."""
    if not url:
        return URL.create("sqlite", database=str(state_path(spec_dir)))
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise StateError(
            f"ENVPLANE_STATE_URL is not a database URL: {_masked(url)}",
            hint="use postgresql://user:password@host:5432/dbname",
        ) from error
    return _with_driver(parsed)


def _with_driver(parsed: URL) -> URL:
    if parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg"}:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite":
        return parsed
    raise StateError(
        f"unsupported state database {parsed.drivername!r} in {_describe(parsed)}",
        hint="use postgresql://user:password@host:5432/dbname, or unset ENVPLANE_STATE_URL "
        "for SQLite in .envplane/state.db",
    )


def _make_folder(target: URL) -> None:
    """The database's folder (private when it is .envplane) and the file itself, 0600.

    SQLite creates its -wal and -shm files with the database file's mode, so making the
    file first is enough; files an older envplane left with the umask's mode are tightened.
    """
    if target.database in (None, "", ":memory:"):
        return
    database = Path(target.database)
    folder = database.parent
    try:
        make_dirs(folder)
    except OSError as error:
        raise StateError(
            f"cannot create the state folder {folder}: {error.strerror or error}",
            hint="run envplane where you may write, or set ENVPLANE_STATE_URL to a database",
        ) from error
    # A file that cannot be made here cannot be opened either: SQLite's own error names it.
    # O_EXCL: never open an existing database by hand. Closing that descriptor would drop
    # every lock this process holds on the file (POSIX locks are per process), and another
    # process would then delete the WAL under a store this process still has open.
    with contextlib.suppress(OSError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    with contextlib.suppress(OSError):
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            restrict(path)


def _tune_sqlite(engine: Engine) -> None:
    # pysqlite opens transactions lazily on its own; take that over so BEGIN IMMEDIATE works.
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        serialise = conn.get_execution_options().get(_SERIALISE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if serialise else "BEGIN")


@contextmanager
def _unreachable_as_state_error(where: str) -> Iterator[None]:
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        raise StateError(
            f"cannot use the state store at {where}: {_first_line(error.orig or error)}",
            hint="check that the database is running and reachable and that "
            "ENVPLANE_STATE_URL is right (unset it to use .envplane/state.db)",
        ) from error


def _key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name`."""
    digest = hashlib.sha256(f"envplane:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _describe(url: URL) -> str:
    if url.drivername.startswith("sqlite"):
        return str(url.database)
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


def _masked(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
