"""The PostgreSQL backend against a real server (scripts/services/postgres.sh)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from envplane.backends.database.postgres import PostgresDatabases
from envplane.errors import BackendError
from envplane.secret import Secret

pytestmark = pytest.mark.integration

SEED = """
CREATE TABLE bot_config (bot_name text PRIMARY KEY, is_dev boolean NOT NULL);
INSERT INTO bot_config VALUES ('test-bot', true);
"""
STAGING_PASSWORD = Secret("staging-password-must-not-leak")
PR5_PASSWORD = Secret("pr5-password-must-not-leak")


@pytest.fixture
def names(postgres: PostgresDatabases, run_id: str) -> Iterator[dict[str, str]]:
    made = {
        "staging": f"finance_report_{run_id}_staging",
        "pr-5": f"finance_report_{run_id}_pr_5",
        "production": f"finance_report_{run_id}",
    }
    yield made
    for name in made.values():
        postgres.purge(name)


def rows(postgres: PostgresDatabases, name: str, password: Secret) -> list[tuple[object, ...]]:
    with psycopg.connect(postgres.url(name, password).reveal()) as conn:
        return conn.execute("SELECT bot_name, is_dev FROM bot_config").fetchall()


def test_ensure_twice_second_is_all_noops(postgres: PostgresDatabases, names: dict[str, str]) -> None:
    name = names["staging"]
    first = postgres.ensure(name, STAGING_PASSWORD, seed=SEED)
    assert [c.action for c in first] == ["create", "create", "create"]
    second = postgres.ensure(name, STAGING_PASSWORD, seed=SEED)
    assert [c.action for c in second] == ["noop", "noop", "noop"]
    assert second[0].reason == f"role {name} exists"
    assert second[1].reason == f"database {name} exists"
    assert rows(postgres, name, STAGING_PASSWORD) == [("test-bot", True)]


def test_facts_after_ensure(postgres: PostgresDatabases, names: dict[str, str]) -> None:
    name = names["staging"]
    assert postgres.observe(name).keys() == frozenset()
    postgres.ensure(name, STAGING_PASSWORD, seed=SEED)
    facts = postgres.observe(name)
    assert facts.keys() == {f"role:{name}", f"database:{name}"}
    assert facts.owner == name and not facts.public_connect and facts.seed is not None


def test_the_seed_tables_belong_to_the_instance_role(postgres: PostgresDatabases, names: dict[str, str]) -> None:
    name = names["staging"]
    postgres.ensure(name, STAGING_PASSWORD, seed=SEED)
    with psycopg.connect(postgres.url(name, STAGING_PASSWORD).reveal()) as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'bot_config'").fetchone()
        conn.execute("INSERT INTO bot_config VALUES ('second', false)")
    assert owner == (name,)


def test_a_changed_seed_is_reported_not_applied(postgres: PostgresDatabases, names: dict[str, str]) -> None:
    name = names["staging"]
    postgres.ensure(name, STAGING_PASSWORD, seed=SEED)
    change = postgres.ensure(name, STAGING_PASSWORD, seed=SEED + "INSERT INTO bot_config VALUES ('x', false);")[2]
    assert change.action == "noop" and change.reason.startswith("seed changed (")
    assert rows(postgres, name, STAGING_PASSWORD) == [("test-bot", True)]


def test_a_failing_seed_keeps_nothing_and_can_be_fixed(postgres: PostgresDatabases, names: dict[str, str]) -> None:
    name = names["staging"]
    with pytest.raises(BackendError, match="seed of database"):
        postgres.ensure(name, STAGING_PASSWORD, seed=SEED + "INSERT INTO missing VALUES (1);")
    assert postgres.observe(name).seed is None
    assert postgres.ensure(name, STAGING_PASSWORD, seed=SEED)[2].action == "create"
    assert rows(postgres, name, STAGING_PASSWORD) == [("test-bot", True)]


def test_a_different_password_is_set(postgres: PostgresDatabases, names: dict[str, str]) -> None:
    name = names["staging"]
    postgres.ensure(name, STAGING_PASSWORD)
    new = Secret("rotated-password")
    change = postgres.ensure(name, new)[0]
    assert change.action == "update" and change.reason == "password differs: set to the one given"
    assert postgres.can_connect(name, new)
    assert not postgres.can_connect(name, STAGING_PASSWORD)


def test_staging_cannot_connect_to_production(postgres: PostgresDatabases, names: dict[str, str]) -> None:
    postgres.ensure(names["staging"], STAGING_PASSWORD)
    postgres.ensure(names["production"], Secret("production-password"))
    assert postgres.can_connect(names["staging"], STAGING_PASSWORD)
    assert not postgres.can_connect(names["staging"], STAGING_PASSWORD, names["production"])
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(postgres.url(names["staging"], STAGING_PASSWORD).reveal(), dbname=names["production"])


def test_a_preview_role_reaches_nothing_but_its_own_database(postgres: PostgresDatabases,
                                                           names: dict[str, str]) -> None:
    """No credential handed to one instance reaches another: the role cannot become
    staging's role, make roles or databases, or connect to staging's database."""
    staging, pr5 = names["staging"], names["pr-5"]
    postgres.ensure(staging, STAGING_PASSWORD, seed=SEED)
    postgres.ensure(pr5, PR5_PASSWORD)
    assert not postgres.can_connect(pr5, PR5_PASSWORD, staging)
    with psycopg.connect(postgres.url(pr5, PR5_PASSWORD).reveal(), autocommit=True) as conn:
        for statement in (f'SET ROLE "{staging}"', f'GRANT "{staging}" TO CURRENT_USER',
                          "CREATE ROLE someone LOGIN", "CREATE DATABASE other",
                          f'ALTER ROLE "{staging}" PASSWORD \'taken\''):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert rows(postgres, staging, STAGING_PASSWORD) == [("test-bot", True)]


def test_purge_pr5_leaves_staging_intact(postgres: PostgresDatabases, names: dict[str, str]) -> None:
    staging, pr5 = names["staging"], names["pr-5"]
    postgres.ensure(staging, STAGING_PASSWORD, seed=SEED)
    postgres.ensure(pr5, PR5_PASSWORD, seed=SEED)
    with psycopg.connect(postgres.url(pr5, PR5_PASSWORD).reveal()) as session:
        # An open session of PR-5 must not stop its purge.
        assert [c.action for c in postgres.purge(pr5)] == ["delete", "delete"]
        assert session.closed or session.broken or _is_dead(session)
    assert [c.action for c in postgres.purge(pr5)] == ["noop", "noop"]
    assert postgres.observe(pr5).keys() == frozenset()
    assert not postgres.can_connect(pr5, PR5_PASSWORD)
    assert rows(postgres, staging, STAGING_PASSWORD) == [("test-bot", True)]
    assert [c.action for c in postgres.ensure(staging, STAGING_PASSWORD, seed=SEED)] == ["noop"] * 3


def _is_dead(session: psycopg.Connection[tuple[object, ...]]) -> bool:
    try:
        session.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_a_database_of_another_owner_is_refused(postgres: PostgresDatabases, postgres_url: Secret,
                                                names: dict[str, str]) -> None:
    name = names["staging"]
    with psycopg.connect(postgres_url.reveal(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with pytest.raises(BackendError, match="exists but belongs to"):
            postgres.ensure(name, STAGING_PASSWORD)
        assert postgres.observe(name).keys() == {f"database:{name}"}  # no role was made
    finally:
        with psycopg.connect(postgres_url.reveal(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}"')


def test_connection_refused_is_a_backend_error_with_a_hint() -> None:
    closed = PostgresDatabases(Secret("postgresql://admin:admin-password-must-not-leak@127.0.0.1:1/x"))
    with pytest.raises(BackendError) as caught:
        closed.observe("finance_report_staging")
    error = caught.value
    assert error.message.startswith("cannot connect to PostgreSQL at 127.0.0.1:1/x")
    assert "ENVPLANE_POSTGRES_URL" in error.hint
    assert "admin-password" not in f"{error} {error!r} {error.hint}"
    assert error.__cause__ is None and error.__suppress_context__


def test_no_password_in_any_output(postgres: PostgresDatabases, postgres_url: Secret,
                                   names: dict[str, str]) -> None:
    name = names["staging"]
    outputs: list[object] = []
    outputs += postgres.ensure(name, STAGING_PASSWORD, seed=SEED)
    outputs += postgres.ensure(name, Secret("another-password-must-not-leak"))
    outputs += [postgres.observe(name), postgres.url(name, STAGING_PASSWORD), postgres]
    with pytest.raises(BackendError) as caught:
        postgres.ensure(names["pr-5"], PR5_PASSWORD, seed="SELECT * FROM nowhere")
    outputs += [caught.value, caught.value.hint]
    outputs += postgres.purge(name) + postgres.purge(names["pr-5"])
    # The test server's admin password is a plain word ("envplane"): look for it as a URL part.
    admin_password = psycopg.conninfo.conninfo_to_dict(postgres_url.reveal()).get("password") or "unset"
    for output in outputs:
        for shown in (str(output), repr(output), f"{output}"):
            assert "must-not-leak" not in shown
            assert f":{admin_password}@" not in shown and postgres_url.reveal() not in shown
