"""Counts and durations of one app's state store for /metrics (issue 14): reads only."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from envplane.state.db import Store, open_existing
from envplane.state.models import Deployment, GateResultRow, Instance


@dataclass(frozen=True)
class Figures:
    instances: Counter[tuple[str, str]]  # (env, status) -> instances
    deploys: list[tuple[str, str, float]]  # (env, outcome, seconds) of every finished deployment
    gates: Counter[tuple[str, str, bool]]  # (env, gate, passed) -> results ever
    failing: Counter[str]  # env -> gates that failed in its newest evaluation


EMPTY = Figures(Counter(), [], Counter(), Counter())


def of_app(spec_dir: Path, app: str, url: str | None) -> Figures:
    """The app's figures; none when it has no state store yet (a read makes none)."""
    store = open_existing(spec_dir, url)
    if store is None:
        return EMPTY
    try:
        return read(store, app)
    finally:
        store.close()


def read(store: Store, app: str) -> Figures:
    with store.session() as session:
        instances = Counter((env, status) for env, status in session.execute(
            select(Instance.env, Instance.status).where(Instance.app == app)))
        deploys = [(env, status, (finished - started).total_seconds()) for env, status, started, finished in
                   session.execute(select(Instance.env, Deployment.status, Deployment.started_at,
                                          Deployment.finished_at)
                                   .join(Instance, Deployment.instance_id == Instance.id)
                                   .where(Instance.app == app, Deployment.finished_at.is_not(None)))
                   if finished is not None]
        gates = Counter((env, gate, ok) for env, gate, ok in session.execute(
            select(GateResultRow.env, GateResultRow.gate, GateResultRow.ok).where(GateResultRow.app == app)))
        newest = (select(GateResultRow.env, func.max(GateResultRow.evaluation).label("evaluation"))
                  .where(GateResultRow.app == app).group_by(GateResultRow.env).subquery())
        failing: Counter[str] = Counter({env: 0 for env, _ in session.execute(select(newest))})
        in_newest = (GateResultRow.env == newest.c.env) & (GateResultRow.evaluation == newest.c.evaluation)
        for (env,) in session.execute(select(GateResultRow.env).join(newest, in_newest)
                                      .where(GateResultRow.app == app, GateResultRow.ok.is_(False))):
            failing[env] += 1
    return Figures(instances, deploys, gates, failing)
