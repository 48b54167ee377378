"""The scheduler's runs as the server's state store keeps them (issue 14): one row per run of
a job (preview-gc, backup, drill) for one app, with its outcome, message and next run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from envplane.secret import mask_known
from envplane.state.clock import as_utc
from envplane.state.db import Store
from envplane.state.guard import plain_detail
from envplane.state.models import SchedulerRunRow

RUNNING = "running"
MESSAGE_LIMIT = 2000  # characters of a run's message kept (an error's first lines, say)


@dataclass(frozen=True)
class Run:
    id: int
    job: str
    app: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str  # running, ok, failed, interrupted
    message: str
    next_run_at: datetime
    server: str
    detail: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "app": self.app, "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "outcome": self.outcome, "message": self.message, "next_run_at": self.next_run_at.isoformat(),
                "server": self.server}


@dataclass(frozen=True)
class Summary:
    """What the store knows of one job: its newest run, the newest that ended (the newest
    one may still run), its newest success, its first start."""

    job: str
    app: str
    latest: Run
    finished: Run | None
    last_success: datetime | None
    first_started: datetime


def _run(row: SchedulerRunRow) -> Run:
    return Run(row.id, row.job, row.app, row.started_at, row.finished_at, row.outcome, row.message,
               row.next_run_at, row.server, row.detail)


def start(store: Store, job: str, app: str, at: datetime, next_run_at: datetime, server: str) -> int:
    with store.session() as session:
        row = SchedulerRunRow(job=job, app=app, started_at=as_utc(at), finished_at=None, outcome=RUNNING,
                              message="", next_run_at=as_utc(next_run_at), server=server, detail={})
        session.add(row)
        session.flush()
        return row.id


def finish(store: Store, run_id: int, outcome: str, message: str, at: datetime,
           detail: Mapping[str, Any] | None = None) -> None:
    with store.session() as session:
        session.execute(update(SchedulerRunRow).where(SchedulerRunRow.id == run_id).values(
            outcome=outcome, message=mask_known(message)[:MESSAGE_LIMIT], finished_at=as_utc(at),
            detail=plain_detail(detail)))


def interrupt_stale(store: Store, job: str, app: str, at: datetime) -> int:
    """Runs of the job still marked running: their server stopped half-way (the caller holds
    the job's lock, so none of them runs now)."""
    with store.session() as session:
        result = session.execute(update(SchedulerRunRow).where(
            SchedulerRunRow.job == job, SchedulerRunRow.app == app, SchedulerRunRow.outcome == RUNNING
        ).values(outcome="interrupted", finished_at=as_utc(at),
                 message="the server stopped while it ran"))
        return int(getattr(result, "rowcount", 0) or 0)


def latest(store: Store, job: str, app: str) -> Run | None:
    with store.session() as session:
        row = session.scalars(select(SchedulerRunRow)
                              .where(SchedulerRunRow.job == job, SchedulerRunRow.app == app)
                              .order_by(SchedulerRunRow.id.desc()).limit(1)).first()
        return _run(row) if row else None


def summaries(store: Store) -> dict[tuple[str, str], Summary]:
    """(job, app) -> what the store knows of it, for every job that ever ran: four queries."""
    with store.session() as session:
        newest = (select(SchedulerRunRow.job, SchedulerRunRow.app, func.max(SchedulerRunRow.id).label("id"))
                  .group_by(SchedulerRunRow.job, SchedulerRunRow.app).subquery())
        rows = session.scalars(select(SchedulerRunRow).join(newest, SchedulerRunRow.id == newest.c.id)).all()
        ended = (select(func.max(SchedulerRunRow.id).label("id")).where(SchedulerRunRow.outcome != RUNNING)
                 .group_by(SchedulerRunRow.job, SchedulerRunRow.app).subquery())
        finished = {(r.job, r.app): _run(r) for r in
                    session.scalars(select(SchedulerRunRow).join(ended, SchedulerRunRow.id == ended.c.id))}
        good = dict(((job, app), at) for job, app, at in session.execute(
            select(SchedulerRunRow.job, SchedulerRunRow.app, func.max(SchedulerRunRow.started_at))
            .where(SchedulerRunRow.outcome == "ok").group_by(SchedulerRunRow.job, SchedulerRunRow.app)))
        first = dict(((job, app), at) for job, app, at in session.execute(
            select(SchedulerRunRow.job, SchedulerRunRow.app, func.min(SchedulerRunRow.started_at))
            .group_by(SchedulerRunRow.job, SchedulerRunRow.app)))
    return {(r.job, r.app): Summary(r.job, r.app, _run(r), finished.get((r.job, r.app)),
                                    _utc(good.get((r.job, r.app))),
                                    _utc(first[(r.job, r.app)]) or r.started_at) for r in rows}


def _utc(moment: datetime | None) -> datetime | None:
    """An aggregate's timestamp comes back without the column's type (SQLite: naive)."""
    if moment is None:
        return None
    if isinstance(moment, str):  # SQLite's MAX() of a timestamp column
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def history(store: Store, job: str | None = None, app: str | None = None, limit: int = 50) -> list[Run]:
    """Runs, newest first."""
    query = select(SchedulerRunRow)
    if job is not None:
        query = query.where(SchedulerRunRow.job == job)
    if app is not None:
        query = query.where(SchedulerRunRow.app == app)
    with store.session() as session:
        rows = session.scalars(query.order_by(SchedulerRunRow.id.desc()).limit(limit)).all()
        return [_run(r) for r in rows]
