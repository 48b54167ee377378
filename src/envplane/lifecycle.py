"""Changing commands with their bookkeeping: the instance lock, deployment rows, audit.

Every command that changes something goes through here, so each one takes the
instance's lock and leaves an audit row whatever its outcome (STYLE.md §13).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from envplane import actions
from envplane.actions import Known
from envplane.apply import Applier, Outcome, Removal, StepHook
from envplane.errors import EnvplaneError, Interrupted, NothingToDo, UsageError
from envplane.events import WaitHook, no_wait
from envplane.plan import Plan, Step
from envplane.spec.load import Project
from envplane.state import audit, audit_key, instances, locks
from envplane.state.clock import utc_now
from envplane.state.db import Store, open_existing, open_store
from envplane.state.locks import Holder, Lock
from envplane.target import Target


@dataclass
class Session:
    """One command's store and who runs it. `actor` is a display name (ENVPLANE_USER or the
    OS user), a claim; `signed_by` is what a verified SSH signature of the command proved
    ({"principal", "key"}), and when present the audit log names that instead."""

    project: Project
    store: Store
    actor: str
    on_wait: Callable[[Holder], None] = lambda holder: None
    wait: bool = True
    lock_timeout: float = 600.0
    lock_ttl: float = locks.DEFAULT_TTL
    signed_by: Mapping[str, str] | None = None
    # Locks this session holds, by (app, env, instance); shared by its `replace`d copies.
    held: dict[tuple[str, str, str], Lock] = field(default_factory=dict)

    @contextmanager
    def locked(self, target: Target) -> Iterator[Lock]:
        """The instance's lock, its lease renewed by a heartbeat until the block ends."""
        with self.holding(target.app, target.env.name, target.id) as lock:
            yield lock

    @contextmanager
    def holding(self, app: str, env: str, instance: str) -> Iterator[Lock]:
        """The instance's lock for a whole operation, `locked` within it being the same lock.

        The rule for a deploy of a commit: lock, then check the commit out in the instance's
        worktree, then deploy. A check-out before the lock changes the files under a deploy
        of another commit that holds it, which then runs them under its own sha (#9).
        """
        key = (app, env, instance)
        if key in self.held:
            yield self.held[key]
            return
        with (
            locks.acquire(self.store, app, env, instance, holder=self.actor, wait=self.wait,
                          timeout=self.lock_timeout, on_wait=self.on_wait, ttl=self.lock_ttl) as lock,
            locks.heartbeat(lock, self.lock_ttl),
        ):
            self.held[key] = lock
            try:
                yield lock
            finally:
                del self.held[key]

    @property
    def who(self) -> str:
        """The name records carry: the proven principal when signed, else the display name."""
        return self.signed_by["principal"] if self.signed_by is not None else self.actor

    def audit(self, action: str, target: Target, outcome: str, detail: Mapping[str, Any]) -> None:
        proof = {} if self.signed_by is None else {"signed_by": dict(self.signed_by),
                                                   "display_name": self.actor}
        audit.record(self.store, self.who, action, target.app, target.env.name, target.id,
                     outcome, {**detail, **proof})


def open_session(project: Project, environ: Mapping[str, str] | None = None) -> Session:
    env = environ if environ is not None else os.environ
    store = open_store(project.root, env.get("ENVPLANE_STATE_URL"),
                       audit_key.for_app(project.app, env))
    return Session(project, store, audit.actor_from(env))


def records(project: Project, environ: Mapping[str, str]) -> list[instances.InstanceRecord]:
    """The app's instances as the state store knows them. Reads only: with no store yet
    there is nothing to read, and a read must not create one."""
    return instances.recorded(project.root, project.app, environ.get("ENVPLANE_STATE_URL"))


def known_instances(project: Project, environ: Mapping[str, str]) -> Known:
    """What the state store knows of the app's instances (actions.known_instances)."""
    return actions.known_instances(project, environ)


def _keeps_its_data_path(session: Session, target: Target) -> None:
    """Refuse to act on an instance resolved with another data path than its recorded one.

    Callers resolve with the recorded paths (actions.Known); this holds the rule under the
    lock, where two first `up`s with different paths would otherwise both win.
    """
    record = instances.get_instance(session.store, target.app, target.env.name, target.id)
    if record is not None and record.data_path is not None and record.data_path != target.data_path:
        raise UsageError(
            f"{target.env.name} {target.id} keeps its data at {record.data_path} (recorded at its "
            f"first `up`), not {target.data_path}",
            "unset DATA_PATH; to move an instance, purge it first")


@dataclass
class _Recorder:
    """Writes each step's row: opened when it starts (so a crash leaves it `running`), closed
    when it ends. How a step ended is written with the next step's start, in one transaction
    (one commit a step, #11); the last one by `flush`, before the deployment is closed."""

    session: Session
    deployment: int
    forward: StepHook
    lock: Lock
    open_steps: dict[int, tuple[Step, int]] = field(default_factory=dict)  # id(step) -> (step, row id)
    index: int = 0
    running: Step | None = None  # the step under way, or the one an interrupt stopped
    ended: instances.Ended | None = None  # the last step that ended, not written yet

    def __call__(self, step: Step, state: str, seconds: float) -> None:
        store = self.session.store
        if state == "start" or state == "interrupted":
            self.running = step
        elif self.running is step:
            self.running = None
        if state == "start":
            self.lock.check()  # a step never runs once another operation took the instance over
            self.index += 1
            row = instances.advance(store, self.ended, self.deployment, self.index, step.kind,
                                    step.description)
            self.ended = None
            self.open_steps[id(step)] = (step, row.id)
        else:
            row_id = self._row_of(step)
            if row_id is None:  # ended without a start (apply reports its lock step so)
                self.index += 1
            self.flush()
            self.ended = instances.Ended(row_id, self.deployment, self.index, step.kind, step.description,
                                         state, {"seconds": round(seconds, 3)}, utc_now())
        self.forward(step, state, seconds)

    def _row_of(self, step: Step) -> int | None:
        """The row the step's start opened. A skip is reported with a copy of the step that
        says why (another description and reason): the same step all the same."""
        if id(step) in self.open_steps:
            return self.open_steps.pop(id(step))[1]
        for key, (opened, row_id) in self.open_steps.items():
            if replace(opened, description=step.description, reason=step.reason) == step:
                del self.open_steps[key]
                return row_id
        return None

    def flush(self) -> None:
        """Write how the last step ended."""
        if self.ended is not None:
            instances.close_step(self.session.store, self.ended)
            self.ended = None

    def close_open(self, status: str, error: str) -> None:
        """Close the steps a failure left running: no row stays `running` for ever."""
        self.flush()
        for _, row_id in self.open_steps.values():
            instances.finish_step(self.session.store, row_id, status, {"error": error})
        self.open_steps.clear()


def _failure(exc: BaseException) -> tuple[str, str]:
    """The status a failure leaves (`interrupted` for Ctrl-C, else `failed`) and its error line.

    An unexpected Python error (a PermissionError on /data, a bug) is recorded as what it
    is, type and message, cut short: the audit log says what happened, not just that.
    """
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    if isinstance(exc, EnvplaneError):
        return status, exc.message
    return status, f"{type(exc).__name__}: {exc}".rstrip(": ")[:500]


def up(session: Session, plan: Plan, on_step: StepHook, health_timeout: float,
       ref: str | None = None, version: str | None = None, action: str = "up",
       on_wait: WaitHook = no_wait) -> Outcome:
    outcome = Outcome()

    def apply(recorder: StepHook) -> dict[str, Any]:
        nonlocal outcome
        applier = Applier(session.project, on_step=recorder, on_wait=on_wait, health_timeout=health_timeout)
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
    with session.locked(target) as lock:
        _keeps_its_data_path(session, target)
        deployment = instances.start_deployment(session.store, target.app, target.env.name, target.id,
                                                session.who, ref=ref, version=version,
                                                data_path=target.data_path)
        recorder = _Recorder(session, deployment.id, on_step, lock)
        given: dict[str, Any] = {"deployment": deployment.id, "ref": ref}
        if version is not None:
            given["version"] = version
        try:
            detail = apply(recorder)
        except BaseException as exc:  # whatever stops it, Ctrl-C included, is recorded, then goes on
            status, error = _failure(exc)
            recorder.close_open(status, error)
            instances.finish_deployment(session.store, deployment.id, status)
            step = recorder.running if status == "interrupted" else None
            session.audit(action, target, status,
                          {**given, "error": error, **({"step": step.description} if step else {})})
            if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted):
                raise _interrupted(target, action, deployment.id, step) from None
            raise
        recorder.flush()
        instances.finish_deployment(session.store, deployment.id, "ok", colour=detail.get("colour"))
        session.audit(action, target, "ok", {**given, **detail})
        return detail


def something_to_remove(project: Project, target: Target, purge: bool, environ: Mapping[str, str]) -> None:
    """Raise NothingToDo when `down` (with `purge`) of the instance would remove nothing: the
    state store does not record it as up (or, for a purge, at all), and neither the engine,
    the proxy nor the disk holds anything of it. Reads only: no store is created, and the
    caller writes no audit or state row. An engine that does not answer fails (exit 1)."""
    store = open_existing(project.root, environ.get("ENVPLANE_STATE_URL"))
    record = None
    if store is not None:
        try:
            record = instances.get_instance(store, target.app, target.env.name, target.id)
        finally:
            store.close()
    gone = (instances.PURGED,) if purge else ("down", instances.PURGED)
    if record is not None and record.status not in gone:
        return
    if Applier(project).traces(target, purge):
        return
    if purge:
        raise NothingToDo(f"{target.app} {target.id}: nothing to remove (never deployed here, or purged "
                          "already)")
    raise NothingToDo(f"{target.app} {target.id} is not running: nothing to stop",
                      "`--purge` also removes its volumes and data" if record is not None else "")


def _interrupted(target: Target, action: str, deployment: int, step: Step | None) -> Interrupted:
    """What Ctrl-C stopped, and where, with the command that finishes it (every step looks
    before it acts, so a re-run converges); deploy recorded it already."""
    where = f' during "{step.description}"' if step is not None else ""
    again = f"envplane up {target.env.name}{target.instance.flags}"
    hint = f"`{again}` finishes it" if action == "up" else "run the command again to finish it"
    return Interrupted(f"{action} of {target.app} {target.id}{where}; deployment #{deployment} is "
                       "marked interrupted", hint)


def down(session: Session, target: Target, purge: bool) -> Removal:
    """Remove the instance under its lock; audited whatever happens.

    A purge that had to keep a resource (its server missing or down) leaves the instance
    `partial`, with its secrets: `preview gc` and the next `down --purge` retry it.
    """
    with session.locked(target):
        return _remove(session, target, purge)


def collect(session: Session, target: Target,
            still: Callable[[instances.InstanceRecord | None], bool]) -> Removal | None:
    """`preview gc`'s purge: only if, under the lock, the instance is `still` a candidate.

    gc chooses from a list read before it takes each lock; a PR reopened and redeployed in
    between is kept (None), not purged for a close that no longer holds.
    """
    with session.locked(target):
        if not still(instances.get_instance(session.store, target.app, target.env.name, target.id)):
            return None
        return _remove(session, target, True)


def _remove(session: Session, target: Target, purge: bool) -> Removal:
    action = "purge" if purge else "down"
    _keeps_its_data_path(session, target)
    try:
        removal = Applier(session.project).down(target, purge)
    except BaseException as exc:
        status, error = _failure(exc)
        session.audit(action, target, status, {"error": error})
        raise
    left = removal.left
    status = "down" if not purge else instances.PARTIAL if removal.kept else instances.PURGED
    instances.upsert_instance(session.store, target.app, target.env.name, target.id, status)
    session.audit(action, target, "ok" if left.empty and not removal.kept else "partial",
                  {"left": {"containers": list(left.containers), "networks": list(left.networks),
                            "volumes": list(left.volumes)}, "kept": list(removal.kept)})
    return removal
