"""SQLite: the embedded database of env `local`, one file per instance in a folder."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from envplane.backends.database.change import Change, create, delete, noop
from envplane.backends.database.names import check_name
from envplane.backends.database.seed import SEED_TABLE, decide, seed_change, seed_hash
from envplane.errors import BackendError
from envplane.private import make_dirs
from envplane.secret import Secret

# SQLite keeps these beside the database while it runs or after a crash.
_COMPANIONS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class SqliteFacts:
    name: str
    path: Path
    database: bool
    seed: str | None = None

    def keys(self) -> frozenset[str]:
        return frozenset({f"sqlite:{self.name}"} if self.database else set())


class SqliteDatabases:
    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def path(self, name: str) -> Path:
        return self._folder / f"{check_name(name)}.db"

    def observe(self, name: str) -> SqliteFacts:
        path = self.path(name)
        if not path.is_file():
            return SqliteFacts(name, path, database=False)
        return SqliteFacts(name, path, database=True, seed=_recorded_seed(path))

    def ensure(self, name: str, password: Secret | None = None, seed: str | None = None) -> list[Change]:
        """Create the file if missing and run the seed once. SQLite has no roles: password is unused."""
        facts = self.observe(name)
        what = f"SQLite database {name}.db"
        changes = [noop(what, f"{what} exists") if facts.database else create(what)]
        if not facts.database:
            make_dirs(self._folder)
            _execute(facts.path, "PRAGMA user_version")  # connecting creates the file
        if seed is not None:
            given = seed_hash(seed)
            changes.append(seed_change(name, facts.seed, given))
            if decide(facts.seed, given) == "apply":
                _apply_seed(facts.path, seed, given)
        return changes

    def purge(self, name: str) -> list[Change]:
        path = self.path(name)
        what = f"SQLite database {name}.db"
        if not path.exists():
            return [noop(what, f"{what} does not exist")]
        for suffix in ("", *_COMPANIONS):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        return [delete(what, "file removed")]

    def url(self, name: str, password: Secret | None = None) -> Secret:
        """`sqlite:///` and the absolute path; a Secret like every DATABASE_URL."""
        return Secret(f"sqlite:///{self.path(name).resolve()}")


def _recorded_seed(path: Path) -> str | None:
    with closing(_connect(path)) as conn:
        table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SEED_TABLE,))
        if table.fetchone() is None:
            return None
        row = conn.execute(f"SELECT sha256 FROM {SEED_TABLE} ORDER BY rowid DESC LIMIT 1").fetchone()
    return str(row[0]) if row else None


def _apply_seed(path: Path, seed: str, sha256: str) -> None:
    # executescript commits on its own, so the seed and its record go in one script
    # wrapped in BEGIN/COMMIT: a failing statement rolls back both.
    script = (
        f"BEGIN;\nCREATE TABLE IF NOT EXISTS {SEED_TABLE} (sha256 TEXT PRIMARY KEY, applied_at TEXT "
        f"NOT NULL DEFAULT CURRENT_TIMESTAMP);\n{seed.rstrip().rstrip(';')};\n"
        f"INSERT INTO {SEED_TABLE} (sha256) VALUES ('{sha256}');\nCOMMIT;"
    )
    with closing(_connect(path)) as conn:
        try:
            conn.executescript(script)
        except sqlite3.Error as err:
            conn.rollback()
            raise BackendError(
                f"seed of {path.name} failed: {err}", "fix the seed SQL; nothing of it was kept"
            ) from None


def _execute(path: Path, statement: str) -> None:
    with closing(_connect(path)) as conn:
        conn.execute(statement)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        return sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as err:
        raise BackendError(f"cannot open SQLite database {path}: {err}", "check the data folder") from None
