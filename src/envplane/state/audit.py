"""The audit log: append-only and chained with a key, so edits and deletions show.

Each row's hash is HMAC-SHA256 under the audit key (kept outside the store, see
`audit_key`) of prev_hash + canonical JSON of its fields, the key's id among them; the
first row's prev_hash is 64 zeros. Someone who can write the database but not read the
key can edit a row, but cannot give it (or any row after it) a hash that verifies.

Rows of an envplane before audit keys are plain sha256(prev_hash + fields) and carry no
key id. They are kept as written and checked as a plain chain, but only as the log's
first rows: `start_keyed` (`envplane audit key`) appends the first keyed row after them
once, by a person's decision, and from then on a plain row is a forgery. Writers refuse
to append to a log whose last row is not keyed, so a log rewritten as a plain chain by
someone without the key is never silently continued.

envplane never updates or deletes a row. Ids are assigned here as last + 1 inside a
serialised transaction, so an id gap means a deleted row and two writers can never fork
the chain.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from envplane.errors import StateError
from envplane.state.audit_key import AuditKey
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
    key_id: str | None = None  # None: a plain SHA-256 row of an envplane before audit keys


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int
    problems: list[str] = field(default_factory=list)
    last_hash: str = GENESIS  # anchor it elsewhere to detect a truncated tail
    unkeyed: int = 0  # plain rows of an older envplane at the start of the log
    key_id: str | None = None  # the key the log was checked with


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
    """Append one row to the audit log, chained with the store's audit key, and return it."""
    refuse_secrets(actor=actor, action=action, app=app, env=env, instance=instance,
                   outcome=outcome)
    plain = plain_detail(detail)
    key = _key(store)
    with store.serialised("audit") as session:
        last = _last(session)
        if last is not None and last.key_id != key.id:
            raise _cannot_continue(last, key)
        return _append(session, key, last, actor, action, app, env, instance, outcome, plain, clock)


def start_keyed(store: Store, clock: Clock = utc_now) -> AuditEntry | None:
    """Key a log of an older envplane from here on: check its plain rows, then append the
    first keyed row, naming how many plain rows come before it and any problem they had.

    None when the log's last row is keyed already (or there is no row: the first write
    keys it). A person runs this once, after `audit verify`: whoever can write the
    database could have rewritten the plain rows, and this row vouches for them as found."""
    key = _key(store)
    with store.serialised("audit") as session:
        last = _last(session)
        if last is None or last.key_id == key.id:
            return None
        if last.key_id is not None:
            raise _cannot_continue(last, key)
        rows = list(session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.id)))
        if any(row.key_id is not None for row in rows):
            raise StateError("the audit log has keyed rows and plain rows after them: those were "
                             "written by someone without the key", hint="see `envplane audit verify`")
        found = _walk(rows, None)
        detail = {"unkeyed_rows": found.rows, "unkeyed_last_hash": found.last_hash,
                  "problems": found.problems}
        return _append(session, key, last, "envplane", "audit-keyed", None, None, None,
                       "ok" if found.ok else "broken", detail, clock)


def _append(session: Session, key: AuditKey, last: AuditEntryRow | None, actor: str, action: str,
            app: str | None, env: str | None, instance: str | None, outcome: str,
            plain: JsonDict, clock: Clock) -> AuditEntry:
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
        "key_id": key.id,
    }
    prev_hash = last.hash if last else GENESIS
    row = AuditEntryRow(**fields, prev_hash=prev_hash, hash=keyed_hash(key, prev_hash, fields))
    session.add(row)
    session.flush()
    return _entry(row)


def _last(session: Session) -> AuditEntryRow | None:
    return session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.id.desc()).limit(1)).first()


def _key(store: Store) -> AuditKey:
    if store.audit_key is None:  # a store opened to read only: a bug to write through it
        raise StateError(f"the state store at {store.where} was opened without its audit key")
    return store.audit_key


def _cannot_continue(last: AuditEntryRow, key: AuditKey) -> StateError:
    if last.key_id is None:
        return StateError(
            f"the audit log's last row ({last.id}) is not keyed: it was written by an envplane "
            "before audit keys, or rewritten by someone without the key",
            hint="run `envplane audit verify`, then `envplane audit key` once to chain the log "
            f"with the audit key from {key.source} from here on")
    return StateError(
        f"the audit log is chained with audit key {last.key_id}; the key here ({key.source}) "
        f"is {key.id}",
        hint="every machine writing one state store needs the same key: set ENVPLANE_AUDIT_KEY "
        "to the key this store was first written with")


def entries(store: Store, limit: int | None = None) -> list[AuditEntry]:
    """The newest `limit` rows (all when None), oldest first."""
    with store.session() as session:
        query = select(AuditEntryRow).order_by(AuditEntryRow.id.desc()).limit(limit)
        return [_entry(row) for row in reversed(session.scalars(query).all())]


def verify(store: Store) -> VerifyResult:
    """Walk the chain in id order with the store's audit key; name every row that was
    edited, deleted, moved, rewritten without the key, or chained with another key."""
    key = _key(store)
    with store.session() as session:
        query = select(AuditEntryRow).order_by(AuditEntryRow.id).execution_options(yield_per=500)
        return _walk(session.scalars(query), key)


def _walk(rows: Iterable[AuditEntryRow], key: AuditKey | None) -> VerifyResult:
    """Check rows in id order; with key None only plain ones (`start_keyed` has no keyed row)."""
    problems: list[str] = []
    count = unkeyed = 0
    keyed = False
    prev: AuditEntryRow | None = None
    for row in rows:
        problem = _check(row, prev, key, keyed)
        if problem:
            problems.append(problem)
        if row.key_id is None and not keyed:
            unkeyed += 1
        keyed = keyed or row.key_id is not None
        prev = row
        count += 1
    if key is not None and count and not keyed:
        problems.append(f"no row of the log is keyed: all {count} are plain SHA-256, as an envplane "
                        "before audit keys wrote them, or as someone without the key rewrote them "
                        "(`envplane audit key` keys the log from here on)")
    last_hash = prev.hash if prev else GENESIS
    return VerifyResult(ok=not problems, rows=count, problems=problems, last_hash=last_hash,
                        unkeyed=unkeyed, key_id=key.id if key else None)


def chain_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """The plain hash of rows written before audit keys (and of no row since)."""
    return hashlib.sha256((prev_hash + canonical(fields)).encode("utf-8")).hexdigest()


def keyed_hash(key: AuditKey, prev_hash: str, fields: Mapping[str, Any]) -> str:
    return key.sign(prev_hash + canonical(fields))


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


def _check(row: AuditEntryRow, prev: AuditEntryRow | None, key: AuditKey | None, keyed: bool) -> str:
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
    if row.key_id is None:
        if keyed:
            return f"{where}: not keyed, after keyed rows (its hash was computed without the key)"
        if chain_hash(row.prev_hash, _fields(row)) != row.hash:
            return f"{where}: hash mismatch (the row was edited)"
        return ""
    if key is None:
        return ""
    if row.key_id != key.id:
        return (f"{where}: chained with audit key {row.key_id}, not with the key here "
                f"({key.id} from {key.source})")
    if keyed_hash(key, row.prev_hash, {**_fields(row), "key_id": row.key_id}) != row.hash:
        return f"{where}: hash mismatch (the row was edited)"
    return ""


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
    return AuditEntry(**_fields(row), prev_hash=row.prev_hash, hash=row.hash, key_id=row.key_id)
