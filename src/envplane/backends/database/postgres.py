"""PostgreSQL: a LOGIN role and a database it owns per environment instance.

Role and database share one name (`finance_report_staging`, from names.sql_identifier).
The admin connection (ENVPLANE_POSTGRES_URL) needs CREATEDB and CREATEROLE, not superuser.
Statements come from postgres_sql; this module only connects, reads facts and runs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from envplane.backends.database import postgres_sql as q
from envplane.backends.database.change import Change, create, delete, noop, update
from envplane.backends.database.names import check_name
from envplane.backends.database.seed import decide, seed_change, seed_hash
from envplane.errors import BackendError, UsageError
from envplane.secret import Secret, mask

Connection = psycopg.Connection[Any]
CONNECT_TIMEOUT = 10
# What an instance's URL keeps of the admin connection: how to reach and verify the server.
# Never sslcert/sslkey/sslpassword: the admin's client certificate is the admin's credential.
TLS_PARAMETERS = ("sslmode", "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "ssl_min_protocol_version",
                  "ssl_max_protocol_version", "channel_binding", "requirepeer", "gssencmode")


class PostgresDatabases:
    def __init__(self, admin_url: Secret | str) -> None:
        self._admin = admin_url if isinstance(admin_url, Secret) else Secret(admin_url)

    def where(self) -> str:
        """host:port/dbname of the admin connection, without user or password."""
        try:
            parts = conninfo_to_dict(self._admin.reveal())
        except psycopg.ProgrammingError:
            return "an unparseable ENVPLANE_POSTGRES_URL"
        host = parts.get("host") or "localhost"
        return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"

    def observe(self, name: str) -> q.PostgresFacts:
        check_name(name)
        with self._connect() as conn:
            row = conn.execute(q.OBSERVE, {"role": name, "database": name}).fetchone()
        assert row is not None  # a SELECT without FROM always gives one row
        facts = q.parse_facts(name, tuple(row))
        if facts.database and facts.admin_member:
            facts = replace(facts, seed=self._recorded_seed(name))
        return facts

    def ensure(self, name: str, password: Secret | None, seed: str | None = None) -> list[Change]:
        check_name(name)
        if password is None or not password:
            raise UsageError(f"PostgreSQL role {name} needs a password", "pass a generated Secret")
        facts = self.observe(name)
        if facts.database and facts.owner != name:
            raise BackendError(
                f"database {name} exists but belongs to {facts.owner}, not to role {name}",
                "it was not made by envplane for this instance: rename or drop it by hand",
            )
        changes = [self._ensure_role(facts, password)]
        changes += self._ensure_database(facts)
        if seed is not None:
            changes.append(self._ensure_seed(name, facts.seed, seed))
        return changes

    def purge(self, name: str) -> list[Change]:
        check_name(name)
        facts = self.observe(name)
        changes: list[Change] = []
        with self._connect() as conn:
            if facts.database:
                if not facts.admin_member:
                    self._run(conn, q.grant_role_to_admin(name))
                self._run(conn, q.drop_database(name))
                changes.append(delete(f"database {name}", "sessions terminated, database dropped"))
            else:
                changes.append(noop(f"database {name}", f"database {name} does not exist"))
            if facts.role:
                self._run(conn, q.drop_role(name))
                changes.append(delete(f"role {name}", "role dropped"))
            else:
                changes.append(noop(f"role {name}", f"role {name} does not exist"))
        return changes

    def url(self, name: str, password: Secret) -> Secret:
        """The instance's DATABASE_URL: same server and TLS settings as the admin URL, its
        own role and database."""
        check_name(name)
        parts = conninfo_to_dict(self._admin.reveal())
        host = parts.get("host") or "localhost"
        port = parts.get("port") or "5432"
        tls = {key: str(parts[key]) for key in TLS_PARAMETERS if parts.get(key) is not None}
        conninfo = make_conninfo("", host=host, port=port, dbname=name, user=name, password=password.reveal())
        return Secret(_as_url(conninfo_to_dict(conninfo), tls))

    def can_connect(self, name: str, password: Secret, database: str | None = None) -> bool:
        """True when role `name` logs in to `database` (its own by default) with password."""
        check_name(name)
        try:
            with self._connect_as(name, password, database or name):
                return True
        except psycopg.OperationalError:
            return False

    # --- the pieces of ensure -------------------------------------------------

    def _ensure_role(self, facts: q.PostgresFacts, password: Secret) -> Change:
        name = facts.name
        what = f"role {name}"
        with self._connect() as conn:
            if not facts.role:
                self._run(conn, q.create_role(name), password)
                self._run(conn, q.grant_role_to_admin(name))
                return create(what)
            if not facts.admin_member:
                self._run(conn, q.grant_role_to_admin(name))
        if facts.can_login and facts.database and self.can_connect(name, password):
            return noop(what, f"role {name} exists")
        with self._connect() as conn:
            self._run(conn, q.set_password(name), password)
        if not facts.can_login:
            return update(what, "login and password set")
        return update(what, "password differs: set to the one given")

    def _ensure_database(self, facts: q.PostgresFacts) -> list[Change]:
        name = facts.name
        what = f"database {name}"
        with self._connect() as conn:
            if not facts.database:
                self._run(conn, q.create_database(name, name))
                self._run(conn, q.revoke_public(name))
                return [create(what, f"missing; owned by {name}, closed to other roles")]
            if facts.public_connect:
                self._run(conn, q.revoke_public(name))
                return [update(what, "CONNECT revoked from PUBLIC")]
        return [noop(what, f"database {name} exists")]

    def _ensure_seed(self, name: str, recorded: str | None, seed: str) -> Change:
        given = seed_hash(seed)
        change = seed_change(name, recorded, given)
        if decide(recorded, given) == "apply":
            self._apply_seed(name, seed, given)
        return change

    def _apply_seed(self, name: str, seed: str, sha256: str) -> None:
        # As the owner, so the tables the seed makes belong to the instance's role; in one
        # transaction with the record, so a failed seed leaves nothing half-done.
        with self._connect(name) as conn:
            try:
                with conn.transaction():
                    conn.execute(q.set_role(name))
                    conn.execute(q.create_seed_table())
                    conn.execute(sql.SQL(seed))  # the user's own SQL, run as-is
                    conn.execute(q.record_seed(), {"sha256": sha256})
            except psycopg.Error as err:
                raise BackendError(
                    f"seed of database {name} failed: {_first_line(err)}",
                    "fix the seed SQL; nothing of it was kept",
                ) from None

    def _recorded_seed(self, name: str) -> str | None:
        with self._connect(name) as conn:
            exists = conn.execute(q.SEED_TABLE_EXISTS).fetchone()
            if not exists or not exists[0]:
                return None
            row = conn.execute(q.RECORDED_SEED).fetchone()
        return str(row[0]) if row else None

    # --- connections ----------------------------------------------------------

    @contextmanager
    def _connect(self, database: str | None = None) -> Iterator[Connection]:
        extra = {"dbname": database} if database else {}
        conninfo = make_conninfo(self._admin.reveal(), connect_timeout=CONNECT_TIMEOUT, **extra)
        with self._open(conninfo, [self._admin]) as conn:
            yield conn

    @contextmanager
    def _connect_as(self, role: str, password: Secret, database: str) -> Iterator[Connection]:
        conninfo = make_conninfo(
            self._admin.reveal(), user=role, password=password.reveal(), dbname=database,
            connect_timeout=CONNECT_TIMEOUT,
        )
        # Raw connect: a refused login is an answer here, not an error.
        with psycopg.connect(conninfo, autocommit=True) as conn:
            yield conn

    @contextmanager
    def _open(self, conninfo: str, secrets: list[Secret]) -> Iterator[Connection]:
        try:
            conn = psycopg.connect(conninfo, autocommit=True, cursor_factory=psycopg.ClientCursor)
        except psycopg.OperationalError as err:
            raise BackendError(
                f"cannot connect to PostgreSQL at {self.where()}: {mask(_first_line(err), secrets)}",
                "is the server running and ENVPLANE_POSTGRES_URL right (host, port, user, password)?",
            ) from None
        with conn:
            yield conn

    def _run(self, conn: Connection, statement: sql.Composed, password: Secret | None = None) -> None:
        params = {"password": q.scram_verifier(password.reveal())} if password is not None else None
        try:
            conn.execute(statement, params)
        except psycopg.Error as err:
            secrets = [password] if password is not None else []
            raise BackendError(
                f"PostgreSQL refused {_describe(statement, conn)}: {mask(_first_line(err), secrets)}",
                "the admin role needs CREATEDB and CREATEROLE (scripts/services/postgres.sh makes one)",
            ) from None


def _describe(statement: sql.Composed, conn: Connection) -> str:
    # The statement holds a placeholder, never the password, so it is safe to show.
    return statement.as_string(conn)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _as_url(parts: dict[str, Any], query: dict[str, str]) -> str:
    user = quote(str(parts["user"]), safe="")
    password = quote(str(parts["password"]), safe="")
    database = quote(str(parts["dbname"]), safe="")
    tail = f"?{urlencode(query)}" if query else ""
    return f"postgresql://{user}:{password}@{parts['host']}:{parts['port']}/{database}{tail}"
