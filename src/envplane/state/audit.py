"""The audit log: append-only and hash-chained, so edits and deletions show.

Each row's hash is sha256(prev_hash + canonical JSON of its fields); the first row's
prev_hash is 64 zeros. envplane never updates or deletes a row. Ids are assigned
here as last + 1 inside a serialised transaction, so an id gap means a deleted row
and two writers can never fork the chain.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from envplane.state.clock import Clock, as_utc, utc_now
from envplane.state.db import Store
from envplane.state.guard import JsonDict, plain_detail, refuse_secrets
from envplane.state.models import AuditEntryRow

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    app: str | None
    env: str | None
    instance: str | None
    outcome: str
    detail: JsonDict
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int
    problems: list[str] = field(default_factory=list)
    last_hash: str = GENESIS  # anchor it elsewhere to detect a truncated tail


def actor_from(environ: Mapping[str, str]) -> str:
    """Who is acting: ENVPLANE_USER when set (CI bots, shared hosts), else the OS user."""
    named = environ.get("ENVPLANE_USER", "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"  # a container user with no passwd entry


def record(
    store: Store,
    actor: str,
    action: str,
    app: str | None,
    env: str | None,
    instance: str | None,
    outcome: str,
    detail: Mapping[str, Any] | None = None,
    clock: Clock = utc_now,
) -> AuditEntry:
    """Append one row to the audit log and return it."""
    refuse_secrets(actor=actor, action=action, app=app, env=env, instance=instance,
                   outcome=outcome)
    plain = plain_detail(detail)
    with store.serialised("audit") as session:
        last = session.scalars(
            select(AuditEntryRow).order_by(AuditEntryRow.id.desc()).limit(1)
        ).first()
        fields = {
            "id": last.id + 1 if last else 1,
            "at": as_utc(clock()),
            "actor": actor,
            "action": action,
            "app": app,
            "env": env,
            "instance": instance,
            "outcome": outcome,
            "detail": plain,
        }
        prev_hash = last.hash if last else GENESIS
        row = AuditEntryRow(**fields, prev_hash=prev_hash, hash=chain_hash(prev_hash, fields))
        session.add(row)
        session.flush()
        return _entry(row)


def entries(store: Store, limit: int | None = None) -> list[AuditEntry]:
    """The newest `limit` rows (all when None), oldest first."""
    with store.session() as session:
        query = select(AuditEntryRow).order_by(AuditEntryRow.id.desc()).limit(limit)
        return [_entry(row) for row in reversed(session.scalars(query).all())]


def verify(store: Store) -> VerifyResult:
    """Walk the chain in id order; name every row that was edited, deleted or moved."""
    problems: list[str] = []
    count = 0
    prev: AuditEntryRow | None = None
    for row in _rows_in_order(store):
        problem = _check(row, prev)
        if problem:
            problems.append(problem)
        prev = row
        count += 1
    last_hash = prev.hash if prev else GENESIS
    return VerifyResult(ok=not problems, rows=count, problems=problems, last_hash=last_hash)


def chain_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(fields)).encode("utf-8")).hexdigest()


def canonical(fields: Mapping[str, Any]) -> str:
    """The row's fields as JSON with sorted keys, no spaces and UTC timestamps."""
    return json.dumps(
        fields,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_timestamp,
    )


def _timestamp(value: object) -> str:
    if isinstance(value, datetime):
        return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    raise TypeError(f"{type(value).__name__} cannot be hashed into the audit log")


def _check(row: AuditEntryRow, prev: AuditEntryRow | None) -> str:
    expected_id = prev.id + 1 if prev else 1
    expected_prev = prev.hash if prev else GENESIS
    where = f"audit row {row.id} ({row.action} by {row.actor})"
    if row.id != expected_id:
        first, last = expected_id, row.id - 1
        missing = f"row {first}" if first == last else f"rows {first}-{last}"
        return f"{where}: {missing} missing before it (deleted)"
    if row.prev_hash != expected_prev:
        before = f"row {prev.id}" if prev else "the start of the log"
        return f"{where}: prev_hash does not match {before} (a row was deleted or reordered)"
    if chain_hash(row.prev_hash, _fields(row)) != row.hash:
        return f"{where}: hash mismatch (the row was edited)"
    return ""


def _rows_in_order(store: Store) -> Iterator[AuditEntryRow]:
    with store.session() as session:
        query = select(AuditEntryRow).order_by(AuditEntryRow.id)
        yield from session.scalars(query.execution_options(yield_per=500))


def _fields(row: AuditEntryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at,
        "actor": row.actor,
        "action": row.action,
        "app": row.app,
        "env": row.env,
        "instance": row.instance,
        "outcome": row.outcome,
        "detail": row.detail,
    }


def _entry(row: AuditEntryRow) -> AuditEntry:
    return AuditEntry(**_fields(row), prev_hash=row.prev_hash, hash=row.hash)
