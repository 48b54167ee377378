"""Backup runs and drills as the state store keeps them (issue 13).

The backups themselves live in their store (dr/store.py), found there from anywhere; these
rows say what ran on this side and how it ended: a run that failed is a row, where the
store has nothing to show for it. `backups status` reads them for its alarms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from envplane.state.clock import as_utc
from envplane.state.db import Store
from envplane.state.guard import plain_detail, refuse_secrets
from envplane.state.models import BackupRow, DrillRow


@dataclass(frozen=True)
class BackupRecord:
    app: str
    env: str
    instance: str
    backup_id: str
    store: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    size: int | None
    release: str | None
    actor: str
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class DrillRecord:
    app: str
    env: str
    target: str
    backup_id: str | None
    started_at: datetime
    finished_at: datetime | None
    ok: bool
    rpo_seconds: float | None
    rto_seconds: float | None
    actor: str
    detail: Mapping[str, Any]


def start_backup(store: Store, app: str, env: str, instance: str, backup_id: str, where: str,
                 actor: str, at: datetime, release: str | None) -> None:
    refuse_secrets(where=where)
    with store.session() as session:
        session.add(BackupRow(app=app, env=env, instance=instance, backup_id=backup_id, store=where,
                              status="running", started_at=as_utc(at), finished_at=None, size=None,
                              release=release, actor=actor, detail={}))


def finish_backup(store: Store, app: str, backup_id: str, status: str, at: datetime,
                  size: int | None = None, detail: Mapping[str, Any] | None = None) -> None:
    with store.session() as session:
        row = session.scalar(select(BackupRow).where(BackupRow.app == app, BackupRow.backup_id == backup_id))
        if row is None:
            return
        row.status, row.finished_at = status, as_utc(at)
        if size is not None:
            row.size = size
        row.detail = {**row.detail, **plain_detail(detail)}


def set_status(store: Store, app: str, backup_ids: list[str], status: str) -> None:
    with store.session() as session:
        for row in session.scalars(select(BackupRow).where(BackupRow.app == app,
                                                           BackupRow.backup_id.in_(backup_ids))):
            row.status = status


def backups(store: Store, app: str, env: str | None = None) -> list[BackupRecord]:
    """Runs of the app (of one env), newest first."""
    query = select(BackupRow).where(BackupRow.app == app)
    if env is not None:
        query = query.where(BackupRow.env == env)
    with store.session() as session:
        rows = session.scalars(query.order_by(BackupRow.started_at.desc(), BackupRow.id.desc())).all()
        return [BackupRecord(r.app, r.env, r.instance, r.backup_id, r.store, r.status, r.started_at,
                             r.finished_at, r.size, r.release, r.actor, dict(r.detail)) for r in rows]


def record_drill(store: Store, app: str, env: str, target: str, backup_id: str | None,
                 started_at: datetime, finished_at: datetime, ok: bool, rpo_seconds: float | None,
                 rto_seconds: float | None, actor: str, detail: Mapping[str, Any]) -> None:
    with store.session() as session:
        session.add(DrillRow(app=app, env=env, target=target, backup_id=backup_id,
                             started_at=as_utc(started_at), finished_at=as_utc(finished_at), ok=ok,
                             rpo_seconds=rpo_seconds, rto_seconds=rto_seconds, actor=actor,
                             detail=plain_detail(detail)))


def drills(store: Store, app: str, env: str | None = None) -> list[DrillRecord]:
    query = select(DrillRow).where(DrillRow.app == app)
    if env is not None:
        query = query.where(DrillRow.env == env)
    with store.session() as session:
        rows = session.scalars(query.order_by(DrillRow.started_at.desc(), DrillRow.id.desc())).all()
        return [DrillRecord(r.app, r.env, r.target, r.backup_id, r.started_at, r.finished_at, r.ok,
                            r.rpo_seconds, r.rto_seconds, r.actor, dict(r.detail)) for r in rows]
