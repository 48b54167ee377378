"""The seed-once decision, and the SQLite backend that uses it (a file: no server)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from envplane.backends.database.seed import decide, seed_change, seed_hash
from envplane.backends.database.sqlite import SqliteDatabases
from envplane.errors import BackendError, UsageError

SEED = "CREATE TABLE bot_config (bot_name TEXT); INSERT INTO bot_config VALUES ('test-bot');"


def test_hash_is_sha256_of_the_text() -> None:
    assert seed_hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert len(seed_hash("select 1")) == 64 and seed_hash("a") != seed_hash("b")


@pytest.mark.parametrize(
    ("recorded", "given", "decision", "action"),
    [(None, "abc", "apply", "create"), ("abc", "abc", "same", "noop"), ("abc", "def", "changed", "noop")],
)
def test_decision(recorded: str | None, given: str, decision: str, action: str) -> None:
    assert decide(recorded, given) == decision
    assert seed_change("db", recorded, given).action == action


def test_a_changed_seed_is_reported_with_both_hashes() -> None:
    change = seed_change("finance_report_staging", "a" * 64, "b" * 64)
    assert change.reason.startswith("seed changed (aaaaaaaaaaaa applied, bbbbbbbbbbbb given): not re-applied")


def rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM bot_config").fetchall()


def test_sqlite_ensure_twice_is_all_noops(tmp_path: Path) -> None:
    store = SqliteDatabases(tmp_path / "data")
    first = store.ensure("finance_report_local", seed=SEED)
    assert [c.action for c in first] == ["create", "create"]
    second = store.ensure("finance_report_local", seed=SEED)
    assert [c.action for c in second] == ["noop", "noop"]
    assert second[0].reason == "SQLite database finance_report_local.db exists"
    assert rows(store.path("finance_report_local")) == [("test-bot",)]


def test_sqlite_changed_seed_is_reported_not_applied(tmp_path: Path) -> None:
    store = SqliteDatabases(tmp_path)
    store.ensure("app_local", seed=SEED)
    change = store.ensure("app_local", seed=SEED + " INSERT INTO bot_config VALUES ('again');")[1]
    assert change.action == "noop" and "seed changed" in change.reason
    assert rows(store.path("app_local")) == [("test-bot",)]


def test_sqlite_failed_seed_keeps_nothing(tmp_path: Path) -> None:
    store = SqliteDatabases(tmp_path)
    with pytest.raises(BackendError, match="no such table: missing"):
        store.ensure("app_local", seed="CREATE TABLE a (x); INSERT INTO missing VALUES (1);")
    assert store.observe("app_local").seed is None
    with sqlite3.connect(store.path("app_local")) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_sqlite_purge_is_idempotent_and_leaves_others(tmp_path: Path) -> None:
    store = SqliteDatabases(tmp_path)
    store.ensure("app_local", seed=SEED)
    store.ensure("app_pr_5", seed=SEED)
    assert [c.action for c in store.purge("app_pr_5")] == ["delete"]
    assert [c.action for c in store.purge("app_pr_5")] == ["noop"]
    assert not store.path("app_pr_5").exists()
    assert rows(store.path("app_local")) == [("test-bot",)]
    assert store.observe("app_local").keys() == {"sqlite:app_local"}
    assert store.observe("app_pr_5").keys() == frozenset()


def test_sqlite_url_is_the_absolute_path(tmp_path: Path) -> None:
    store = SqliteDatabases(tmp_path)
    assert store.url("app_local").reveal() == f"sqlite:///{(tmp_path / 'app_local.db').resolve()}"
    assert str(store.url("app_local")) == "***"


def test_sqlite_refuses_a_path_as_name(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        SqliteDatabases(tmp_path).ensure("../escape")
