"""The audit log: read it, prove its keyed chain, and key a log written before audit keys.

With no state store yet there is no log: each function raises NothingToDo (exit 0) and
creates neither store nor key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envplane.errors import NothingToDo
from envplane.spec.load import Project

if TYPE_CHECKING:  # the state store loads SQLAlchemy: only when used
    from envplane.state.audit import AuditEntry
    from envplane.state.db import Store


@contextmanager
def _opened(project: Project) -> Iterator[Store]:
    """The store with the app's audit key (ENVPLANE_AUDIT_KEY or its key file), both as the
    project's environment names them (the CLI's, or the server's for the apps it serves)."""
    from envplane.state import audit_key
    from envplane.state.db import open_store
    from envplane.state.location import exists

    url = project.environ.get("ENVPLANE_STATE_URL")
    if not exists(project.root, url):
        raise NothingToDo(f"no audit log of {project.app} here yet: nothing was recorded",
                          "commands that change something (up, down, release, ...) write it")
    store = open_store(project.root, url, audit_key.for_app(project.app, project.environ))
    try:
        yield store
    finally:
        store.close()


def record(project: Project, actor: str, action: str, env: str | None, instance: str | None, outcome: str,
           detail: Mapping[str, Any]) -> None:
    """Append one row to the app's audit log (its store created when there is none yet) and
    close the store again: a server records for many apps and may hold none of their files open."""
    from envplane import lifecycle
    from envplane.state import audit

    store = lifecycle.open_session(project, project.environ).store
    try:
        audit.record(store, actor, action, project.app, env, instance, outcome, detail)
    finally:
        store.close()


def entry_dict(r: AuditEntry) -> dict[str, Any]:
    return {"id": r.id, "at": r.at.isoformat(), "actor": r.actor, "action": r.action, "app": r.app,
            "env": r.env, "instance": r.instance, "outcome": r.outcome, "detail": r.detail,
            "key_id": r.key_id}


@dataclass(frozen=True)
class Log:
    entries: tuple[AuditEntry, ...]  # oldest first: the newest `limit` rows

    def as_dict(self) -> dict[str, Any]:
        return {"entries": [entry_dict(r) for r in self.entries]}


def log(project: Project, limit: int = 50) -> Log:
    """Who did what, when, to which instance, and how it ended."""
    from envplane.state import audit

    with _opened(project) as store:
        return Log(tuple(audit.entries(store, limit)))


@dataclass(frozen=True)
class Verified:
    """The chain checked: ok, or every problem found (an edited, deleted or reordered row,
    or one whose hash was recomputed without the audit key)."""

    ok: bool
    rows: int
    problems: tuple[str, ...]
    last_hash: str
    unkeyed: int  # plain SHA-256 rows of an envplane before audit keys, at the start
    key_id: str | None
    key_source: str | None  # the variable or key file the key came from

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": self.rows, "problems": list(self.problems),
                "last_hash": self.last_hash, "unkeyed_rows": self.unkeyed, "key_id": self.key_id}


def verify(project: Project) -> Verified:
    """Check the keyed chain of the app's audit log (a broken one is an answer, not an error)."""

    with _opened(project) as store:
        return _verified(store)


def _verified(store: Store) -> Verified:
    from envplane.state import audit

    result = audit.verify(store)
    source = store.audit_key.source if store.audit_key else None
    return Verified(result.ok, result.rows, tuple(result.problems), result.last_hash, result.unkeyed,
                    result.key_id, source)


@dataclass(frozen=True)
class Checked:
    """The newest rows of the log with the whole chain checked, from one look at the store."""

    log: Log
    verified: Verified


def checked_log(project: Project, limit: int = 50) -> Checked:
    """`log` and `verify` at once (the dashboard shows both)."""
    from envplane.state import audit

    with _opened(project) as store:
        return Checked(Log(tuple(audit.entries(store, limit))), _verified(store))


@dataclass(frozen=True)
class Keyed:
    """`audit key`: the row the keyed chain starts from (None: keyed already, or empty)."""

    keyed_from: int | None
    unkeyed: int
    problems: tuple[str, ...]  # found in the plain rows before it, vouched for as found
    key_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"keyed_from": self.keyed_from, "unkeyed_rows": self.unkeyed, "key_id": self.key_id}


def start_keyed(project: Project) -> Keyed:
    """Once, for a log written before audit keys: chain it with the audit key from here on."""
    from envplane.state import audit

    with _opened(project) as store:
        entry = audit.start_keyed(store)
        key_id = store.audit_key.id if store.audit_key else None
    if entry is None:
        return Keyed(None, 0, (), key_id)
    return Keyed(entry.id, int(entry.detail["unkeyed_rows"]), tuple(entry.detail["problems"]), key_id)
