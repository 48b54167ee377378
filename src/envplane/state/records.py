"""An app's instances as the state store records them, read without SQLAlchemy when it can be.

`status` and `plan` only read the instances table, and SQLAlchemy's import is most of their
start-up (0.25-0.45 s of CPU, #11). A SQLite store is read here with the standard library's
sqlite3, opened read-only; PostgreSQL (ENVPLANE_STATE_URL), or a SQLite store this query
cannot read (an older schema: the full path migrates it first), goes through
state/instances.py as before. Nothing here writes, and no store is created.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from envplane.state.location import exists, state_path

RUNNING = "running"
PURGED = "purged"  # everything of the instance is gone: it owns no data path any more
PARTIAL = "partial"  # purged but for resources whose server could not be reached

_COLUMNS = ("id, app, env, instance, status, ref, created_at, updated_at, last_deploy_at, closed_at, "
            "data_path")


@dataclass(frozen=True)
class InstanceRecord:
    id: int
    app: str
    env: str
    instance: str
    status: str
    ref: str | None
    created_at: datetime
    updated_at: datetime
    last_deploy_at: datetime | None
    closed_at: datetime | None
    data_path: str | None = None  # recorded at its first `up`; None before it and once purged


def recorded(spec_dir: Path, app: str, url: str | None = None) -> list[InstanceRecord]:
    """The app's instances, ordered by env and instance. Reads only: with no store yet there
    is nothing to read, and a read must not create one."""
    if not exists(spec_dir, url):
        return []
    if url is None:
        found = _sqlite(state_path(spec_dir), app)
        if found is not None:
            return found
    from envplane.state import instances  # SQLAlchemy: PostgreSQL, or a store to migrate first

    return instances.recorded_by_store(spec_dir, app, url)


def _sqlite(path: Path, app: str) -> list[InstanceRecord] | None:
    """None when this query cannot read the file (the caller takes the full path)."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM instances WHERE app = ? ORDER BY app, env, instance",
                            (app,)).fetchall()
        return [InstanceRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5], _when(r[6]), _when(r[7]),
                               _maybe(r[8]), _maybe(r[9]), r[10]) for r in rows]
    except (sqlite3.Error, ValueError, TypeError):
        return None
    finally:
        conn.close()


def _when(value: str) -> datetime:
    """A timestamp as SQLAlchemy's UTCDateTime gives it back: aware, in UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _maybe(value: str | None) -> datetime | None:
    return None if value is None else _when(value)
