"""Changing commands with their bookkeeping: the instance lock, deployment rows, audit.

Every command that changes something goes through here, so each one takes the
instance's lock and leaves an audit row whatever its outcome (STYLE.md §13).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from envplane.apply import Applier, Outcome, StepHook
from envplane.backends.runtime.base import Leftovers
from envplane.errors import EnvplaneError
from envplane.names import Instance
from envplane.plan import Plan, Step
from envplane.spec.load import Project
from envplane.state import audit, instances, locks
from envplane.state.db import Store, open_store, state_path
from envplane.state.locks import Holder
from envplane.target import Target


@dataclass
class Session:
    project: Project
    store: Store
    actor: str
    on_wait: Callable[[Holder], None] = lambda holder: None
    wait: bool = True
    lock_timeout: float = 600.0

    @contextmanager
    def locked(self, target: Target) -> Iterator[None]:
        with locks.acquire(self.store, target.app, target.env.name, target.id, holder=self.actor,
                           wait=self.wait, timeout=self.lock_timeout, on_wait=self.on_wait):
            yield

    def audit(self, action: str, target: Target, outcome: str, detail: Mapping[str, Any]) -> None:
        audit.record(self.store, self.actor, action, target.app, target.env.name, target.id,
                     outcome, dict(detail))


def open_session(project: Project, environ: Mapping[str, str] | None = None) -> Session:
    env = environ if environ is not None else os.environ
    return Session(project, open_store(project.root, env.get("ENVPLANE_STATE_URL")),
                   audit.actor_from(env))


def known_instances(project: Project, environ: Mapping[str, str]) -> list[Instance]:
    """PR and CI instances the state store knows, for the isolation check. Reads only."""
    url = environ.get("ENVPLANE_STATE_URL")
    if url is None and not state_path(project.root).exists():
        return []  # no store yet: nothing to read, and a read must not create one
    store = open_store(project.root, url)
    try:
        rows = instances.list_instances(store, project.app)
    finally:
        store.close()
    found = []
    for row in rows:
        if row.status in ("down", "purged"):
            continue
        instance = Instance.from_id(row.env, row.instance)
        if instance.pr is not None or instance.run is not None:
            found.append(instance)
    return found


@dataclass
class _Recorder:
    session: Session
    deployment: int
    forward: StepHook
    open_steps: dict[int, int] = field(default_factory=dict)
    index: int = 0

    def __call__(self, step: Step, state: str, seconds: float) -> None:
        store = self.session.store
        if state == "start":
            self.index += 1
            row = instances.start_step(store, self.deployment, self.index, step.kind, step.description)
            self.open_steps[id(step)] = row.id
        else:
            row_id = self.open_steps.pop(id(step), None)
            if row_id is None:
                self.index += 1
                row_id = instances.start_step(store, self.deployment, self.index, step.kind,
                                              step.description).id
            instances.finish_step(store, row_id, state, {"seconds": round(seconds, 3)})
        self.forward(step, state, seconds)


def up(session: Session, plan: Plan, on_step: StepHook, health_timeout: float,
       ref: str | None = None, version: str | None = None, action: str = "up") -> Outcome:
    outcome = Outcome()

    def apply(recorder: StepHook) -> dict[str, Any]:
        nonlocal outcome
        applier = Applier(session.project, on_step=recorder, health_timeout=health_timeout)
        outcome = applier.up(plan)
        return {"urls": outcome.urls}

    deploy(session, plan.target, action, apply, on_step, ref=ref, version=version)
    return outcome


def deploy(session: Session, target: Target, action: str,
           apply: Callable[[StepHook], Mapping[str, Any]], on_step: StepHook,
           ref: str | None = None, version: str | None = None) -> Mapping[str, Any]:
    """Run `apply` under the instance's lock as one recorded deployment, audited either way.

    A blue-green `apply` decides its colour under the lock and returns it in its detail.
    """
    with session.locked(target):
        deployment = instances.start_deployment(session.store, target.app, target.env.name, target.id,
                                                session.actor, ref=ref, version=version)
        recorder = _Recorder(session, deployment.id, on_step)
        given: dict[str, Any] = {"deployment": deployment.id, "ref": ref}
        if version is not None:
            given["version"] = version
        try:
            detail = apply(recorder)
        except EnvplaneError as exc:
            instances.finish_deployment(session.store, deployment.id, "failed")
            session.audit(action, target, "failed", {**given, "error": exc.message})
            raise
        instances.finish_deployment(session.store, deployment.id, "ok", colour=detail.get("colour"))
        session.audit(action, target, "ok", {**given, **detail})
        return detail


def down(session: Session, target: Target, purge: bool) -> Leftovers:
    action = "purge" if purge else "down"
    with session.locked(target):
        try:
            left = Applier(session.project).down(target, purge)
        except EnvplaneError as exc:
            session.audit(action, target, "failed", {"error": exc.message})
            raise
        instances.upsert_instance(session.store, target.app, target.env.name, target.id,
                                  "purged" if purge else "down")
        session.audit(action, target, "ok" if left.empty else "partial",
                      {"left": {"containers": list(left.containers), "networks": list(left.networks),
                                "volumes": list(left.volumes)}})
        return left
