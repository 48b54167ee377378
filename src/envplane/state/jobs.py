"""The server's jobs as its state store keeps them (issue 14): one row per job — what it
does, for which app and instance, who started it, its state and outcome — and its events,
numbered from 1 and masked before they come here. The newest `keep` finished jobs are kept
with their events; older ones are deleted when another ends.

Each job names the server process that runs it (`this_server`): host, pid, its start time,
boot id and PID namespace, so that a server starting on a store it shares with another
server of the same host marks interrupted only the jobs of a process that is gone — as
locks judge their holders (state/locks.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from envplane.state import locks
from envplane.state.clock import as_utc
from envplane.state.db import Store
from envplane.state.guard import plain_detail
from envplane.state.models import ServerJobEventRow, ServerJobRow

RUNNING = "running"


@dataclass(frozen=True)
class Record:
    id: str
    kind: str
    app: str
    env: str | None
    instance: str | None
    by: str
    server: str
    created_at: datetime
    finished_at: datetime | None
    state: str
    result: dict[str, Any] | None
    problem: dict[str, Any] | None
    events: int  # how many it has


def _record(row: ServerJobRow, events: int) -> Record:
    return Record(row.id, row.kind, row.app, row.env, row.instance, row.started_by, row.server,
                  row.created_at, row.finished_at, row.state, row.result, row.problem, events)


def add(store: Store, job_id: str, kind: str, app: str, env: str | None, instance: str | None, by: str,
        server: str, at: datetime) -> None:
    with store.session() as session:
        session.add(ServerJobRow(id=job_id, kind=kind, app=app, env=env, instance=instance, started_by=by,
                                 server=server, created_at=as_utc(at), finished_at=None, state=RUNNING,
                                 result=None, problem=None))


def add_event(store: Store, job_id: str, seq: int, data: Mapping[str, Any]) -> None:
    add_events(store, [(job_id, seq, data)])


def add_events(store: Store, events: Iterable[tuple[str, int, Mapping[str, Any]]]) -> None:
    """(job id, number, event) rows, in one transaction."""
    with store.session() as session:
        session.add_all([ServerJobEventRow(job_id=job_id, seq=seq, data=plain_detail(data))
                         for job_id, seq, data in events])


def finish(store: Store, job_id: str, state: str, at: datetime, result: Mapping[str, Any] | None,
           problem: Mapping[str, Any] | None, keep: int) -> None:
    """Record the job's outcome; then forget the finished jobs older than the newest `keep`."""
    with store.session() as session:
        session.execute(update(ServerJobRow).where(ServerJobRow.id == job_id).values(
            state=state, finished_at=as_utc(at),
            result=plain_detail(result) if result is not None else None,
            problem=plain_detail(problem) if problem is not None else None))
    forget_old(store, keep)


def forget_old(store: Store, keep: int) -> int:
    """Delete the finished jobs (and their events) beyond the newest `keep`; how many went."""
    with store.session() as session:
        old = session.scalars(select(ServerJobRow.id).where(ServerJobRow.state != RUNNING)
                              .order_by(ServerJobRow.created_at.desc(), ServerJobRow.id.desc())
                              .offset(keep)).all()
        if old:
            session.execute(delete(ServerJobEventRow).where(ServerJobEventRow.job_id.in_(old)))
            session.execute(delete(ServerJobRow).where(ServerJobRow.id.in_(old)))
        return len(old)


def this_server(pid: int | None = None) -> str:
    """The `server` of a job run by this process (or by `pid` of this PID namespace)."""
    me = locks.Me.this("server", pid)
    return (f"{me.host} pid {me.pid} started {me.started or '-'} boot {me.boot_id or '-'} "
            f"ns {me.pid_ns or '-'}")


def left_behind(server: str, host: str) -> bool:
    """Whether the server process a job names has ended, seen from a server on `host`. A
    bare host name (jobs of a server before pids were kept) counts as ended on that host; a
    process of another host, or of another PID namespace of this boot, cannot be judged here
    and counts as running."""
    words = server.split()
    if words[:1] != [host]:
        return False
    if len(words) == 1:
        return True
    fields = dict(zip(words[1::2], words[2::2], strict=False))
    me = locks.Me("server")
    if fields.get("boot") != (me.boot_id or "-"):
        return True  # this host booted since: nothing of that boot runs
    pid, started = fields.get("pid", ""), fields.get("started", "")
    if not pid.isdigit():
        return False
    return bool(locks.gone_here(int(pid), int(started) if started.isdigit() else None,
                                fields.get("boot"), fields.get("ns"), me))


def interrupt_running(store: Store, host: str, at: datetime, problem: Mapping[str, Any]) -> list[str]:
    """The running jobs whose server process on `host` has ended (`left_behind`):
    `interrupted`, with `problem` saying so. Their ids."""
    with store.session() as session:
        running = session.execute(select(ServerJobRow.id, ServerJobRow.server)
                                  .where(ServerJobRow.state == RUNNING)).all()
        ids = [job_id for job_id, server in running if left_behind(server, host)]
        if ids:
            session.execute(update(ServerJobRow).where(ServerJobRow.id.in_(ids)).values(
                state="interrupted", finished_at=as_utc(at), problem=plain_detail(problem)))
        return ids


def get(store: Store, job_id: str) -> Record | None:
    with store.session() as session:
        row = session.get(ServerJobRow, job_id)
        if row is None:
            return None
        count = session.scalar(select(func.count()).where(ServerJobEventRow.job_id == job_id)) or 0
        return _record(row, int(count))


def listing(store: Store, app: str | None = None) -> list[Record]:
    """Every job the store keeps, newest first."""
    query = select(ServerJobRow)
    if app is not None:
        query = query.where(ServerJobRow.app == app)
    counts = (select(ServerJobEventRow.job_id, func.count().label("n"))
              .group_by(ServerJobEventRow.job_id).subquery())
    with store.session() as session:
        rows = session.execute(query.add_columns(counts.c.n)
                               .outerjoin(counts, counts.c.job_id == ServerJobRow.id)
                               .order_by(ServerJobRow.created_at.desc(), ServerJobRow.id.desc())).all()
        return [_record(row, int(n or 0)) for row, n in rows]


def events(store: Store, job_id: str, after: int = 0) -> list[dict[str, Any]]:
    """The job's events numbered above `after`, in order, each with its number (`seq`)."""
    with store.session() as session:
        return [{**data, "seq": seq} for seq, data in session.execute(
            select(ServerJobEventRow.seq, ServerJobEventRow.data)
            .where(ServerJobEventRow.job_id == job_id, ServerJobEventRow.seq > after)
            .order_by(ServerJobEventRow.seq))]
