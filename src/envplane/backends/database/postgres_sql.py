"""PostgreSQL statements as data: pure builders, nothing here connects.

Identifiers always go through sql.Identifier. Passwords are never part of a statement:
they are a `%(password)s` placeholder that a client-side cursor fills at execution, and
the value sent is a SCRAM verifier, so the server never sees the password itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field

from psycopg import sql

PASSWORD = sql.Placeholder("password")
SCRAM_ITERATIONS = 4096


def create_role(role: str) -> sql.Composed:
    return sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), PASSWORD)


def set_password(role: str) -> sql.Composed:
    return sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), PASSWORD)


def grant_role_to_admin(role: str) -> sql.Composed:
    # The admin is not a superuser: it must be a member of the instance role to create a
    # database owned by it, to SET ROLE for the seed, and to drop that database later.
    return sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role))


def create_database(database: str, owner: str) -> sql.Composed:
    return sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner))


def revoke_public(database: str) -> sql.Composed:
    # Every role may connect to a new database by default; only its owner should.
    return sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database))


def drop_database(database: str) -> sql.Composed:
    # WITH (FORCE) terminates the database's sessions first (PostgreSQL 13+).
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))


def drop_role(role: str) -> sql.Composed:
    return sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role))


def set_role(role: str) -> sql.Composed:
    return sql.SQL("SET ROLE {}").format(sql.Identifier(role))


def create_seed_table() -> sql.Composed:
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} "
        "(sha256 text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    ).format(sql.Identifier("envplane_seed"))


def record_seed() -> sql.Composed:
    return sql.SQL("INSERT INTO {} (sha256) VALUES (%(sha256)s)").format(sql.Identifier("envplane_seed"))


# The probe: one row about a role and a database of the same instance. Its parser is
# `parse_facts`, tested on recorded rows.
OBSERVE = sql.SQL(
    """SELECT
  (SELECT rolcanlogin FROM pg_roles WHERE rolname = %(role)s) AS can_login,
  (SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles WHERE rolname = %(role)s) AS admin_member,
  (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %(database)s) AS owner,
  (SELECT count(*) > 0 FROM pg_database d,
          aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
    WHERE d.datname = %(database)s AND a.grantee = 0 AND a.privilege_type = 'CONNECT') AS public_connect"""
)

RECORDED_SEED = sql.SQL("SELECT sha256 FROM envplane_seed ORDER BY applied_at DESC LIMIT 1")
SEED_TABLE_EXISTS = sql.SQL("SELECT to_regclass('public.envplane_seed') IS NOT NULL")


@dataclass(frozen=True)
class PostgresFacts:
    name: str
    role: bool
    can_login: bool
    admin_member: bool
    database: bool
    owner: str | None
    public_connect: bool
    seed: str | None = field(default=None)  # sha256 of the seed the database ran

    def keys(self) -> frozenset[str]:
        """The `kind:name` keys plan.Observed expects."""
        out = set()
        if self.role:
            out.add(f"role:{self.name}")
        if self.database:
            out.add(f"database:{self.name}")
        return frozenset(out)


def parse_facts(name: str, row: tuple[object, ...]) -> PostgresFacts:
    can_login, admin_member, owner, public_connect = row
    return PostgresFacts(
        name=name,
        role=can_login is not None,
        can_login=bool(can_login),
        admin_member=bool(admin_member),
        database=owner is not None,
        owner=str(owner) if owner is not None else None,
        public_connect=bool(public_connect),
    )


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for password (RFC 5802/7677).

    Passwords outside ASCII are returned unchanged: the client normalises those with
    SASLprep, which this function does not reproduce, so the server must hash them.
    """
    if not password.isascii():
        return password
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )
