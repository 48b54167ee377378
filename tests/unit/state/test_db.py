"""Opening the store: where it lives, how SQLite is tuned, migrations, and clear errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from envplane.errors import StateError
from envplane.state import audit
from envplane.state.db import HEAD_REVISION, Store, database_url, open_store, state_path
from envplane.state.models import Base


def scalar(store: Store, statement: str) -> object:
    with store.engine.connect() as conn:
        return conn.execute(text(statement)).scalar()


def test_the_default_store_is_sqlite_in_dot_envplane(tmp_path: Path):
    store = open_store(tmp_path)
    assert store.dialect == "sqlite"
    assert store.where == str(tmp_path / ".envplane" / "state.db")
    assert (tmp_path / ".envplane" / "state.db").is_file()
    store.close()


def test_naming_the_store_creates_nothing(tmp_path: Path):
    assert state_path(tmp_path) == tmp_path / ".envplane" / "state.db"
    assert database_url(tmp_path).database == str(tmp_path / ".envplane" / "state.db")
    assert not (tmp_path / ".envplane").exists()


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path: Path):
    store = open_store(tmp_path)
    assert scalar(store, "PRAGMA journal_mode") == "wal"
    assert scalar(store, "PRAGMA foreign_keys") == 1
    assert scalar(store, "PRAGMA busy_timeout") == 30_000
    store.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgres_urls_use_the_psycopg3_driver(tmp_path: Path, scheme: str):
    url = database_url(tmp_path, f"{scheme}://u:p@db.internal:5432/envplane")
    assert (url.drivername, url.host, url.database) == ("postgresql+psycopg", "db.internal",
                                                        "envplane")


def test_an_unsupported_database_is_a_state_error(tmp_path: Path):
    with pytest.raises(StateError, match="unsupported state database 'mysql'") as caught:
        database_url(tmp_path, "mysql://u:hunter2@db/envplane")
    assert "hunter2" not in caught.value.message
    assert "postgresql://" in caught.value.hint


def test_a_url_that_is_not_a_url_is_a_state_error(tmp_path: Path):
    with pytest.raises(StateError, match="not a database URL: not a url"):
        database_url(tmp_path, "not a url")


def test_an_unreachable_postgres_is_a_state_error_without_the_password(tmp_path: Path):
    with pytest.raises(StateError) as caught:
        open_store(tmp_path, "postgresql://envplane:hunter2@127.0.0.1:1/envplane")
    error = caught.value
    assert error.message.startswith(
        "cannot use the state store at postgresql://envplane:***@127.0.0.1:1/envplane: ")
    assert "hunter2" not in error.message
    assert "ENVPLANE_STATE_URL" in error.hint
    assert error.exit_code == 1
    assert not (tmp_path / ".envplane").exists()


def test_a_failed_migration_is_a_state_error_and_changes_nothing(tmp_path: Path):
    path = state_path(tmp_path)
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE audit_log (x INTEGER)")
    with pytest.raises(StateError, match=r"migrating the state store at .* failed: ") as caught:
        open_store(tmp_path)
    assert "nothing was changed" in caught.value.hint
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"audit_log"}


def test_a_store_from_a_newer_envplane_is_a_state_error(tmp_path: Path):
    open_store(tmp_path).close()
    with sqlite3.connect(state_path(tmp_path)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StateError, match="cannot migrate the state store") as caught:
        open_store(tmp_path)
    assert "newer envplane" in caught.value.hint


def test_migrating_twice_is_a_noop_that_keeps_the_data(
    store_and_url: tuple[Store, str | None], tmp_path: Path
):
    store, url = store_and_url
    entry = audit.record(store, "alice", "up", "shop", "test", "pr-1", "ok", {})
    again = open_store(tmp_path, url)
    assert scalar(again, "SELECT version_num FROM alembic_version") == HEAD_REVISION
    assert scalar(again, "SELECT count(*) FROM alembic_version") == 1
    assert audit.entries(again) == [entry]
    again.close()


def test_the_migration_builds_exactly_the_models(store: Store):
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []



def test_a_state_folder_that_cannot_be_made_is_a_state_error(tmp_path: Path):
    (tmp_path / ".envplane").write_text("a file where the folder should be")
    with pytest.raises(StateError, match=r"cannot create the state folder .*/\.envplane"):
        open_store(tmp_path)


def test_a_state_file_that_cannot_be_opened_is_a_state_error(tmp_path: Path):
    state_path(tmp_path).mkdir(parents=True)  # a folder where the database should be
    with pytest.raises(StateError, match=r"cannot use the state store at .*state\.db: "):
        open_store(tmp_path)


def test_a_store_of_the_previous_schema_upgrades_keeping_its_deployments(tmp_path: Path):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from envplane.state import instances
    from envplane.state.db import MIGRATIONS

    path = state_path(tmp_path)
    path.parent.mkdir(parents=True)
    engine = create_engine(f"sqlite:///{path}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")  # what envplane before releases wrote
        conn.execute(text("INSERT INTO instances (app, env, instance, status, created_at, updated_at) "
                          "VALUES ('shop', 'staging', 'staging', 'ok', '2026-01-01', '2026-01-01')"))
        conn.execute(text("INSERT INTO deployments (instance_id, version, status, actor, started_at) "
                          "VALUES (1, 'v1.0.3', 'ok', 'alice', '2026-01-01')"))
    engine.dispose()
    store = open_store(tmp_path)
    assert scalar(store, "SELECT version_num FROM alembic_version") == HEAD_REVISION
    [old] = instances.deployments(store, "shop", "staging", "staging")
    # recorded before data paths were: it gets its own at its next deploy
    assert instances.get_instance(store, "shop", "staging", "staging").data_path is None  # type: ignore[union-attr]
    assert (old.version, old.colour, old.actor) == ("v1.0.3", None, "alice")
    assert scalar(store, "SELECT count(*) FROM releases") == 0
    store.close()


def test_opening_the_store_again_keeps_the_one_already_open_working(tmp_path: Path):
    """A long-running process (the webhook server) keeps a store open and opens another per
    deploy. SQLite's file locks belong to the process: opening and closing the database file
    by hand drops them, and the next process to close its connection then believes it was the
    last one and deletes the WAL under the open store (writes lost, "disk I/O error")."""
    import subprocess
    import sys

    from envplane.state import instances

    def count_in_another_process() -> int:
        code = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                "print(c.execute('SELECT count(*) FROM instances').fetchone()[0]); c.close()")
        done = subprocess.run([sys.executable, "-c", code, str(state_path(tmp_path))],
                              capture_output=True, text=True, check=True, timeout=30)
        return int(done.stdout)

    first = open_store(tmp_path)
    instances.upsert_instance(first, "shop", "test", "pr-1", "ok")
    open_store(tmp_path).close()
    assert count_in_another_process() == 1
    instances.upsert_instance(first, "shop", "test", "pr-2", "ok")
    assert count_in_another_process() == 2
    again = open_store(tmp_path)
    assert len(instances.list_instances(again, "shop")) == 2
    again.close()
    first.close()
