"""Releases, approvals and gate results in the state store (issue 5).

A release is recorded once, when it is built, with the exact image of every service;
promotions and rollbacks read it back and deploy those images. Records are frozen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from envplane.errors import StateError
from envplane.state.clock import Clock, as_utc, utc_now
from envplane.state.db import Store
from envplane.state.guard import plain_detail, refuse_secrets
from envplane.state.models import (
    ApprovalRow,
    Deployment,
    DeploymentStep,
    GateResultRow,
    Instance,
    ReleaseRow,
)


@dataclass(frozen=True)
class Release:
    app: str
    version: str
    ref: str | None
    commit: str | None
    images: Mapping[str, Mapping[str, Any]]  # service -> {"ref", "id", "digest"}
    actor: str
    created_at: datetime


@dataclass(frozen=True)
class StoredApproval:
    """An approval as recorded: the signed payload and signature are checked again by the gate."""

    env: str
    actor: str  # display name
    at: datetime
    principal: str | None  # what the signature proved when it was made
    key_fingerprint: str | None
    payload: str | None  # None: recorded before approvals were signed
    signature: str | None


@dataclass(frozen=True)
class GateRecord:
    evaluation: int
    env: str
    gate: str
    ok: bool
    detail: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class Placement:
    """A version's latest successful deployment on one instance."""

    env: str
    instance: str
    version: str
    colour: str | None
    at: datetime


def record_release(store: Store, app: str, version: str, images: Mapping[str, Mapping[str, Any]],
                   actor: str, ref: str | None = None, commit: str | None = None,
                   clock: Clock = utc_now) -> Release:
    refuse_secrets(version=version, ref=ref, commit=commit, actor=actor)
    plain = plain_detail(images)
    with store.serialised("releases") as session:
        if _find(session, app, version) is not None:
            raise StateError(f"release {version} of {app} exists already",
                             hint="a version is built once; release again for the next one")
        row = ReleaseRow(app=app, version=version, ref=ref, commit=commit, images=plain,
                         actor=actor, created_at=as_utc(clock()))
        session.add(row)
        session.flush()
        return _release(row)


def get_release(store: Store, app: str, version: str) -> Release | None:
    with store.session() as session:
        row = _find(session, app, version)
        return _release(row) if row else None


def list_releases(store: Store, app: str) -> list[Release]:
    """Every release of the app, newest first."""
    query = select(ReleaseRow).where(ReleaseRow.app == app).order_by(ReleaseRow.id.desc())
    with store.session() as session:
        return [_release(row) for row in session.scalars(query)]


def record_approval(store: Store, app: str, version: str, env: str, actor: str, at: datetime,
                    principal: str, key_fingerprint: str, payload: str, signature: str) -> None:
    refuse_secrets(actor=actor, principal=principal, payload=payload, signature=signature)
    with store.serialised("releases") as session:
        session.add(ApprovalRow(app=app, version=version, env=env, actor=actor, at=as_utc(at),
                                principal=principal, key_fingerprint=key_fingerprint, payload=payload,
                                signature=signature))


def approvals(store: Store, app: str, version: str, env: str | None = None) -> list[StoredApproval]:
    """The version's approvals (for one env, or all), oldest first."""
    query = select(ApprovalRow).where(ApprovalRow.app == app, ApprovalRow.version == version)
    if env is not None:
        query = query.where(ApprovalRow.env == env)
    with store.session() as session:
        return [StoredApproval(r.env, r.actor, r.at, r.principal, r.key_fingerprint, r.payload, r.signature)
                for r in session.scalars(query.order_by(ApprovalRow.id))]


def record_gates(store: Store, app: str, version: str, env: str, actor: str,
                 results: Iterable[tuple[str, bool, str]], clock: Clock = utc_now) -> int:
    """Store one evaluation of an env's gates; returns its number."""
    now = as_utc(clock())
    with store.serialised("releases") as session:
        last = session.scalar(select(func.max(GateResultRow.evaluation))) or 0
        for gate, ok, detail in results:
            refuse_secrets(detail=detail)
            session.add(GateResultRow(evaluation=last + 1, app=app, version=version, env=env,
                                      gate=gate, ok=ok, detail=detail[:1000], actor=actor, at=now))
        return last + 1


def latest_gates(store: Store, app: str, version: str) -> list[GateRecord]:
    """The gates of the latest evaluation of the version, per env."""
    with store.session() as session:
        rows = list(session.scalars(select(GateResultRow).where(
            GateResultRow.app == app, GateResultRow.version == version).order_by(GateResultRow.id)))
    latest: dict[str, int] = {}
    for row in rows:
        latest[row.env] = max(latest.get(row.env, 0), row.evaluation)
    return [GateRecord(r.evaluation, r.env, r.gate, r.ok, r.detail, r.actor, r.at)
            for r in rows if r.evaluation == latest[r.env]]


def passed_gates(store: Store, app: str, version: str, env: str) -> bool:
    """Whether some evaluation of `env`'s gates for the version passed every one of them."""
    with store.session() as session:
        rows = session.execute(select(GateResultRow.evaluation, GateResultRow.ok).where(
            GateResultRow.app == app, GateResultRow.version == version, GateResultRow.env == env)).all()
    failed = {evaluation for evaluation, ok in rows if not ok}
    return any(evaluation not in failed for evaluation, _ in rows)


def history(store: Store, app: str, env: str, instance: str) -> list[Placement]:
    """The instance's successful deployments of released versions, newest first."""
    return _released(store, app, Instance.env == env, Instance.instance == instance)


def placements(store: Store, app: str) -> list[Placement]:
    """What each instance runs now: its latest successful deployment of a version."""
    seen: dict[tuple[str, str], Placement] = {}
    for placed in _released(store, app, Instance.status.not_in(("down", "purged"))):
        seen.setdefault((placed.env, placed.instance), placed)
    return list(seen.values())


def _released(store: Store, app: str, *where: ColumnElement[bool]) -> list[Placement]:
    """Successful deployments of released versions of the app, newest first."""
    query = (
        select(Deployment, Instance)
        .join(Instance)
        .where(Instance.app == app, Deployment.status == "ok", Deployment.version.is_not(None), *where)
        .order_by(Deployment.id.desc())
    )
    with store.session() as session:
        return [Placement(i.env, i.instance, d.version or "", d.colour, d.finished_at or d.started_at)
                for d, i in session.execute(query).all()]


def hook_ran(store: Store, app: str, version: str, env: str, hook: str) -> bool:
    """Whether a deployment of the version on the env ran the hook successfully."""
    query = (
        select(DeploymentStep.id)
        .join(Deployment, DeploymentStep.deployment_id == Deployment.id)
        .join(Instance, Deployment.instance_id == Instance.id)
        .where(Instance.app == app, Instance.env == env, Deployment.version == version,
               DeploymentStep.kind == f"hook:{hook}", DeploymentStep.status == "ok")
    )
    with store.session() as session:
        return session.scalars(query).first() is not None


def _find(session: Session, app: str, version: str) -> ReleaseRow | None:
    return session.scalars(select(ReleaseRow).where(ReleaseRow.app == app,
                                                    ReleaseRow.version == version)).first()


def _release(row: ReleaseRow) -> Release:
    return Release(row.app, row.version, row.ref, row.commit, dict(row.images), row.actor,
                   row.created_at)


def record_pushed(store: Store, app: str, version: str, service: str, digest: str) -> None:
    """The registry digest a release's image was pushed as (`pushed`), recorded once: hosts
    pull that digest from then on. The rest of the record stays as built."""
    refuse_secrets(digest=digest)
    with store.serialised("releases") as session:
        row = _find(session, app, version)
        if row is None:
            raise StateError(f"no release {version} of {app}")
        images = {name: dict(image) for name, image in row.images.items()}
        if service not in images or images[service].get("pushed"):
            return
        images[service]["pushed"] = digest
        row.images = images
