"""Environment instances, their deployments and each deployment's steps.

Functions return frozen records, never live ORM objects, so callers cannot write
state behind the store's back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from envplane.errors import StateError
from envplane.state.clock import Clock, as_utc, utc_now
from envplane.state.db import Store, open_existing
from envplane.state.guard import JsonDict, plain_detail, refuse_secrets
from envplane.state.models import Deployment, DeploymentStep, Instance
from envplane.state.records import PARTIAL as PARTIAL
from envplane.state.records import PURGED as PURGED
from envplane.state.records import RUNNING as RUNNING
from envplane.state.records import InstanceRecord as InstanceRecord

Row = TypeVar("Row", Instance, Deployment, DeploymentStep)


@dataclass(frozen=True)
class DeploymentRecord:
    id: int
    instance_id: int
    ref: str | None
    version: str | None
    status: str
    actor: str
    started_at: datetime
    finished_at: datetime | None
    colour: str | None = None


@dataclass(frozen=True)
class StepRecord:
    id: int
    deployment_id: int
    index: int
    kind: str
    description: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    detail: JsonDict


def upsert_instance(
    store: Store,
    app: str,
    env: str,
    instance: str,
    status: str,
    ref: str | None = None,
    clock: Clock = utc_now,
) -> InstanceRecord:
    """Create the instance or update its status (and ref, when given).

    A purged instance forgets its data path: its next `up` records one afresh.
    """
    refuse_secrets(app=app, env=env, instance=instance, status=status, ref=ref)
    now = as_utc(clock())
    with store.serialised("instances") as session:
        row = _find(session, app, env, instance)
        if row is None:
            row = Instance(app=app, env=env, instance=instance, status=status, ref=ref,
                           created_at=now, updated_at=now)
            session.add(row)
        else:
            row.status, row.updated_at = status, now
            row.ref = ref if ref is not None else row.ref
        if status == PURGED:
            row.data_path = None
        session.flush()
        return _instance(row)


def mark_closed(
    store: Store, app: str, env: str, instance: str, clock: Clock = utc_now
) -> InstanceRecord:
    """Record that the pull request behind a preview instance was closed."""
    now = as_utc(clock())
    with store.serialised("instances") as session:
        row = _require(session, app, env, instance)
        row.closed_at, row.updated_at = now, now
        return _instance(row)


def get_instance(store: Store, app: str, env: str, instance: str) -> InstanceRecord | None:
    with store.session() as session:
        row = _find(session, app, env, instance)
        return _instance(row) if row else None


def list_instances(
    store: Store, app: str | None = None, env: str | None = None
) -> list[InstanceRecord]:
    query = select(Instance).order_by(Instance.app, Instance.env, Instance.instance)
    if app is not None:
        query = query.where(Instance.app == app)
    if env is not None:
        query = query.where(Instance.env == env)
    with store.session() as session:
        return [_instance(row) for row in session.scalars(query)]


def start_deployment(
    store: Store,
    app: str,
    env: str,
    instance: str,
    actor: str,
    ref: str | None = None,
    version: str | None = None,
    clock: Clock = utc_now,
    colour: str | None = None,
    data_path: str | None = None,
) -> DeploymentRecord:
    """Open a deployment of the instance, creating the instance on its first deploy.

    The first deploy records the instance's data path (`data_path`); a later one never
    moves it. A deploy also reopens a closed preview: its PR is wanted again, and gc must
    not collect it for a close that no longer holds.
    """
    refuse_secrets(actor=actor, ref=ref, version=version, data_path=data_path)
    now = as_utc(clock())
    with store.serialised("instances") as session:
        target = _find(session, app, env, instance)
        if target is None:
            target = Instance(app=app, env=env, instance=instance, status="deploying",
                              ref=ref, created_at=now, updated_at=now)
            session.add(target)
        if target.data_path is None:
            target.data_path = data_path
        target.closed_at = None
        session.flush()
        row = Deployment(instance_id=target.id, ref=ref, version=version, status=RUNNING,
                         actor=actor, started_at=now, colour=colour)
        session.add(row)
        session.flush()
        return _deployment(row)


def finish_deployment(
    store: Store, deployment_id: int, status: str, clock: Clock = utc_now, colour: str | None = None
) -> DeploymentRecord:
    """Close a deployment; a successful one also stamps its instance's last deploy."""
    now = as_utc(clock())
    with store.serialised("instances") as session:
        row = _get(session, Deployment, deployment_id)
        row.status, row.finished_at = status, now
        row.colour = colour if colour is not None else row.colour
        target = _get(session, Instance, row.instance_id)
        target.status, target.updated_at = status, now
        if status == "ok":
            target.last_deploy_at = now
            target.ref = row.ref if row.ref is not None else target.ref
        return _deployment(row)


def deployments(store: Store, app: str, env: str, instance: str) -> list[DeploymentRecord]:
    """The instance's deployments, newest first."""
    query = (
        select(Deployment)
        .join(Instance)
        .where(Instance.app == app, Instance.env == env, Instance.instance == instance)
        .order_by(Deployment.id.desc())
    )
    with store.session() as session:
        return [_deployment(row) for row in session.scalars(query)]


@dataclass(frozen=True)
class Ended:
    """A step that ended and is written with the next step's start (`advance`): its row, or
    None when it never had one (reported ended without a start), and how it ended."""

    row_id: int | None
    deployment_id: int
    index: int
    kind: str
    description: str
    status: str
    detail: Mapping[str, Any]
    at: datetime


def start_step(
    store: Store,
    deployment_id: int,
    index: int,
    kind: str,
    description: str,
    clock: Clock = utc_now,
) -> StepRecord:
    return advance(store, None, deployment_id, index, kind, description, clock)


def advance(
    store: Store,
    ended: Ended | None,
    deployment_id: int,
    index: int,
    kind: str,
    description: str,
    clock: Clock = utc_now,
) -> StepRecord:
    """Close the step that `ended` and open the next one, in one transaction: one commit a
    step instead of two (#11; each SQLite commit waits for the disk)."""
    refuse_secrets(kind=kind, description=description)
    with store.serialised("instances") as session:
        if ended is not None:
            _close(session, ended)
        _get(session, Deployment, deployment_id)
        row = DeploymentStep(deployment_id=deployment_id, index=index, kind=kind,
                             description=description, status=RUNNING,
                             started_at=as_utc(clock()), detail={})
        session.add(row)
        session.flush()
        return _step(row)


def close_step(store: Store, ended: Ended) -> StepRecord:
    """Write how a step ended (the last one of a deployment, which no other step follows)."""
    with store.serialised("instances") as session:
        return _step(_close(session, ended))


def _close(session: Session, ended: Ended) -> DeploymentStep:
    plain = plain_detail(ended.detail)
    if ended.row_id is None:
        refuse_secrets(kind=ended.kind, description=ended.description)
        _get(session, Deployment, ended.deployment_id)
        row = DeploymentStep(deployment_id=ended.deployment_id, index=ended.index, kind=ended.kind,
                             description=ended.description, status=ended.status,
                             started_at=as_utc(ended.at), finished_at=as_utc(ended.at), detail=plain)
        session.add(row)
        session.flush()
        return row
    row = _get(session, DeploymentStep, ended.row_id)
    if row.description != ended.description:  # a skip says why
        refuse_secrets(kind=ended.kind, description=ended.description)
    row.status, row.finished_at, row.detail = ended.status, as_utc(ended.at), plain
    row.description = ended.description
    return row


def finish_step(
    store: Store,
    step_id: int,
    status: str,
    detail: Mapping[str, Any] | None = None,
    clock: Clock = utc_now,
) -> StepRecord:
    plain = plain_detail(detail)
    with store.serialised("instances") as session:
        row = _get(session, DeploymentStep, step_id)
        row.status, row.finished_at, row.detail = status, as_utc(clock()), plain
        return _step(row)


def steps(store: Store, deployment_id: int) -> list[StepRecord]:
    query = (
        select(DeploymentStep)
        .where(DeploymentStep.deployment_id == deployment_id)
        .order_by(DeploymentStep.index)
    )
    with store.session() as session:
        return [_step(row) for row in session.scalars(query)]


def _find(session: Session, app: str, env: str, instance: str) -> Instance | None:
    query = select(Instance).where(
        Instance.app == app, Instance.env == env, Instance.instance == instance
    )
    return session.scalars(query).first()


def _require(session: Session, app: str, env: str, instance: str) -> Instance:
    row = _find(session, app, env, instance)
    if row is None:
        raise StateError(f"no instance {app}/{env}/{instance} in the state store",
                         hint="list known instances with `envplane status`")
    return row


def _get(session: Session, model: type[Row], key: int) -> Row:
    row = session.get(model, key)
    if row is None:
        raise StateError(f"no {model.__tablename__} row with id {key} in the state store")
    return row


def _instance(row: Instance) -> InstanceRecord:
    return InstanceRecord(row.id, row.app, row.env, row.instance, row.status, row.ref,
                          row.created_at, row.updated_at, row.last_deploy_at, row.closed_at,
                          row.data_path)


def _deployment(row: Deployment) -> DeploymentRecord:
    return DeploymentRecord(row.id, row.instance_id, row.ref, row.version, row.status,
                            row.actor, row.started_at, row.finished_at, row.colour)


def _step(row: DeploymentStep) -> StepRecord:
    return StepRecord(row.id, row.deployment_id, row.index, row.kind, row.description,
                      row.status, row.started_at, row.finished_at, dict(row.detail))


def recorded(spec_dir: Path, app: str, url: str | None = None) -> list[InstanceRecord]:
    """The app's instances as its state store knows them (records.py: a SQLite store is read
    without SQLAlchemy; `status` and `plan` call it there, so as not to load this module)."""
    from envplane.state import records

    return records.recorded(spec_dir, app, url)


def recorded_by_store(spec_dir: Path, app: str, url: str | None = None) -> list[InstanceRecord]:
    """The same through SQLAlchemy (PostgreSQL; a SQLite store of an older schema, migrated)."""
    store = open_existing(spec_dir, url)
    if store is None:
        return []
    try:
        return list_instances(store, app)
    finally:
        store.close()
