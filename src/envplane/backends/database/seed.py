"""The seed-once rule shared by PostgreSQL and SQLite: a seed runs once per database.

The database records the sha256 of the seed it ran (table `envplane_seed`, written in the
same transaction as the seed). Running the same seed again is a no-op; a different seed
is reported and not applied, because re-running inserts on live data duplicates rows.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from envplane.backends.database.change import Change, create, noop

Decision = Literal["apply", "same", "changed"]

SEED_TABLE = "envplane_seed"


def seed_hash(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def decide(recorded: str | None, given: str) -> Decision:
    if recorded is None:
        return "apply"
    return "same" if recorded == given else "changed"


def seed_change(database: str, recorded: str | None, given: str) -> Change:
    """The Change to report for a seed decision (the caller applies it when 'apply')."""
    what = f"seed of {database}"
    decision = decide(recorded, given)
    if decision == "apply":
        return create(what, f"seed {given[:12]} not applied yet")
    if decision == "same":
        return noop(what, f"seed {given[:12]} already applied")
    return noop(
        what,
        f"seed changed ({recorded[:12] if recorded else ''} applied, {given[:12]} given): "
        "not re-applied; migrate the data or purge the instance",
    )
