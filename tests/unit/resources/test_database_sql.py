"""PostgreSQL statements as data: exact SQL text, quoting, no password in any statement."""

from __future__ import annotations

import base64
import hashlib
import hmac

import psycopg
import pytest
from psycopg import sql

from envplane.backends.database import Change
from envplane.backends.database import postgres_sql as q
from envplane.backends.database.names import check_name
from envplane.errors import UsageError

# Rendering a Composed needs only an adapter context, not a connection.
ctx = psycopg.adapt.Transformer()


def text(statement: sql.Composable) -> str:
    return statement.as_string(ctx)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (q.create_role("finance_report_staging"),
         'CREATE ROLE "finance_report_staging" LOGIN PASSWORD %(password)s'),
        (q.set_password("finance_report_staging"),
         'ALTER ROLE "finance_report_staging" LOGIN PASSWORD %(password)s'),
        (q.grant_role_to_admin("finance_report_pr_5"), 'GRANT "finance_report_pr_5" TO CURRENT_USER'),
        (q.create_database("finance_report_pr_5", "finance_report_pr_5"),
         'CREATE DATABASE "finance_report_pr_5" OWNER "finance_report_pr_5"'),
        (q.revoke_public("finance_report_pr_5"),
         'REVOKE CONNECT, TEMPORARY ON DATABASE "finance_report_pr_5" FROM PUBLIC'),
        (q.drop_database("finance_report_pr_5"), 'DROP DATABASE IF EXISTS "finance_report_pr_5" WITH (FORCE)'),
        (q.drop_role("finance_report_pr_5"), 'DROP ROLE IF EXISTS "finance_report_pr_5"'),
        (q.set_role("a"), 'SET ROLE "a"'),
        (q.record_seed(), 'INSERT INTO "envplane_seed" (sha256) VALUES (%(sha256)s)'),
    ],
)
def test_statements_are_exact(statement: sql.Composed, expected: str) -> None:
    assert text(statement) == expected


def test_identifiers_are_quoted_not_formatted() -> None:
    assert text(q.drop_role('x"; DROP TABLE y; --')) == 'DROP ROLE IF EXISTS "x""; DROP TABLE y; --"'


def test_the_password_is_a_placeholder_never_a_value() -> None:
    statement = q.create_role("r")
    assert any(isinstance(part, sql.Placeholder) for part in statement)
    assert "Literal" not in repr(statement)


@pytest.mark.parametrize(
    ("row", "role", "database", "public_connect"),
    [
        ((None, None, None, False), False, False, False),
        ((True, True, None, False), True, False, False),
        ((True, True, "finance_report_staging", True), True, True, True),
        ((False, False, "finance_report_staging", False), True, True, False),
    ],
)
def test_parse_facts(row: tuple[object, ...], role: bool, database: bool, public_connect: bool) -> None:
    facts = q.parse_facts("finance_report_staging", row)
    assert (facts.role, facts.database, facts.public_connect) == (role, database, public_connect)
    expected = {f"role:{facts.name}"} if role else set()
    expected |= {f"database:{facts.name}"} if database else set()
    assert facts.keys() == expected


def test_parse_facts_keeps_the_owner() -> None:
    facts = q.parse_facts("a", (True, True, "someone_else", False))
    assert facts.owner == "someone_else" and facts.can_login and facts.admin_member


def test_scram_verifier_matches_rfc_7677() -> None:
    # RFC 7677's example: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 rounds.
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = q.scram_verifier("pencil", salt)
    head, keys = verifier.split("$", 1)[1].split("$")
    stored, server = keys.split(":")
    assert head == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    assert base64.b64decode(stored) == hashlib.sha256(client_key).digest()
    # The RFC's server signature derives from this ServerKey; its base64 is fixed.
    assert server == "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
    assert "pencil" not in verifier


def test_scram_verifier_leaves_non_ascii_to_the_server() -> None:
    assert q.scram_verifier("pässwort") == "pässwort"


def test_scram_verifier_salts_each_time() -> None:
    assert q.scram_verifier("same") != q.scram_verifier("same")


@pytest.mark.parametrize("name", ["finance_report_staging", "finance_report_pr_5", "a", "x" * 63, "1app_ci_9"])
def test_names_envplane_makes_are_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 64, "Finance", "finance-report", 'a"b', "a b", "postgres", "template1", "pg_role", "public"]
)
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError):
        check_name(name)


def test_change_prints_action_what_and_reason() -> None:
    change = Change("noop", "role finance_report_staging", "role finance_report_staging exists")
    assert str(change) == "noop role finance_report_staging: role finance_report_staging exists"
