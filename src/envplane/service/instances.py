"""One env instance's life: `up`, `run_local` (env local's processes) and `down` (with its
purge: the confirmation it needs, the final backup it takes, the resources it may keep)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envplane import actions, lifecycle
from envplane.backends.runtime.base import Leftovers
from envplane.errors import BackendError, NeedsConfirmation, UsageError
from envplane.events import Note, Progress, Report, ignore
from envplane.secret import Secret, mask_known
from envplane.service.session import open_session
from envplane.spec.load import Project
from envplane.target import Target, resolve

if TYPE_CHECKING:
    from envplane.lifecycle import Session


@dataclass(frozen=True)
class Up:
    """An instance that came up: where its public services answer, and its steps."""

    app: str
    instance: str
    project: str
    urls: Mapping[str, str]
    seconds: float
    steps: tuple[tuple[str, str, float], ...] = ()  # (kind, state, seconds)
    reasons: Mapping[str, str] = field(default_factory=dict)  # kind -> why it was skipped

    def as_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "project": self.project, "urls": dict(self.urls),
                "seconds": round(self.seconds, 2),
                "steps": [{"kind": k, "state": st, "seconds": round(sec, 2),
                           **({"reason": self.reasons[k]} if k in self.reasons else {})}
                          for k, st, sec in self.steps]}


def checked_target(project: Project, env: str, pr: int | None = None, run: str | None = None) -> Target:
    """The instance resolved and checked against every other one the spec and state know."""
    return actions.resolve_checked(project, env, pr, run, lifecycle.known_instances(project, os.environ))


def checked_ref(project: Project, ref: str | None) -> None:
    """For a caller that is not at the app's checkout (the server's API, MCP): the ref it
    names must be what the checkout holds, since that is what a deploy runs (UsageError)."""
    from envplane.release.flow import checked_out

    if ref is not None:
        checked_out(project.root, ref)


def up(project: Project, env: str, pr: int | None = None, run: str | None = None, *,
       ref: str | None = None, build: bool = False, timeout: float = 120.0, wait: bool = True,
       report: Report = ignore) -> Up:
    """Bring an env instance up and wait until every service is healthy (compose envs;
    env local runs in the foreground through `run_local`)."""
    target = checked_target(project, env, pr, run)
    if target.env.runtime == "process":
        raise UsageError(f"env {env} runs as local processes in the foreground",
                         f"run `envplane up {env}` in a terminal")
    return up_target(open_session(project, report, wait), target, ref=ref, build=build, timeout=timeout,
                     report=report)


def up_target(session: lifecycle.Session, target: Target, *, ref: str | None = None, build: bool = False,
              timeout: float = 120.0, report: Report = ignore) -> Up:
    """`up` of a target its caller resolved (the webhook resolves a PR's head its own way)."""
    plan = actions.plan(session.project, target, build=build)
    progress = Progress(report)
    started = time.monotonic()
    outcome = lifecycle.up(session, plan, progress.step, timeout, ref, on_wait=progress.waiting)
    return Up(target.app, target.id, target.project, dict(outcome.urls), time.monotonic() - started,
              tuple((s.kind, state, sec) for s, state, sec in outcome.steps),
              {s.kind: s.reason for s, state, _ in outcome.steps if state == "skip" and s.reason})


def run_local(project: Project, env: str, stop: threading.Event, *, timeout: float = 120.0,
              report: Report = ignore) -> Target:
    """Run env local's `dev` commands as supervised processes until `stop` is set (or a
    KeyboardInterrupt once they are healthy); their output comes as LogLine events.

    A KeyboardInterrupt before they are healthy goes on to the caller, after the
    processes are stopped.
    """
    from envplane.backends.runtime.health import checks_for, wait_healthy
    from envplane.backends.runtime.process import ProcessSupervisor
    from envplane.events import LogLine
    from envplane.private import make_dirs

    target = resolve(project, env)
    make_dirs(Path(target.data_path))
    resources = _local_resources(project.root, target, report)
    supervisor = ProcessSupervisor(target, project.root,
                                   lambda service, colour, line: report(LogLine(service, mask_known(line))),
                                   resources=resources, stopping=stop)
    supervisor.start()
    try:
        wait_healthy(checks_for(target), lambda: [], timeout)
        # From here on Ctrl-C is how a person ends the run, even one that comes while
        # "is up" is being printed (a person reacts to exactly that line).
        try:
            report(Note(f"{target.app} {target.id} is up"))
            for service in target.services:
                if service.url:
                    report(Note(f"  {service.name}: {service.url}"))
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        supervisor.stop()
    return target


def _local_resources(root: Path, target: Target, report: Report) -> dict[str, dict[str, str]]:
    """Env local's embedded resources: a SQLite file and a folder per bucket, no servers."""
    if not (target.database or target.bucket or any(s.secrets for s in target.services)):
        return {}
    from envplane.backends.secrets import open_secret_store
    from envplane.provision import Provisioner, Servers, store_kind

    store = open_secret_store(store_kind(target, os.environ), root, os.environ, target.app)
    provisioner = Provisioner(target, Servers(), store, root)
    provisioner.database()
    provisioner.bucket()
    for change in provisioner.changes:
        if change.action != "noop":
            report(Note(f"✓ {change}"))
    # A local process gets its variables in its environment; nothing here is a secret
    # (a SQLite path, a folder), but reveal() keeps the one code path for both kinds.
    return {s.name: {k: v.reveal() if isinstance(v, Secret) else v
                     for k, v in provisioner.variables(s).items()}
            for s in target.services if s.uses or s.secrets}


@dataclass(frozen=True)
class Down:
    """An instance taken down (or purged): what the engine still has of it and, after a purge
    that could not reach a server, the resources kept with their secrets."""

    app: str
    instance: str
    env: str
    flags: str  # the command-line flags naming the instance (" --pr 5"), for hints
    purge: bool
    left: Leftovers
    kept: tuple[str, ...] = ()  # "redis: Redis at ... does not answer"
    final_backup: str | None = None  # the id of the backup taken before the purge

    @property
    def partial(self) -> bool:
        return bool(self.kept)

    def as_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "purged": self.purge and not self.kept, "partial": self.partial,
                "kept": list(self.kept), "left": {"containers": list(self.left.containers),
                                                  "networks": list(self.left.networks),
                                                  "volumes": list(self.left.volumes)},
                "final_backup": self.final_backup}


class PartialPurge(BackendError):
    """The purge deleted the data path but kept resources whose server was missing or down
    (exit 1); `done` says what it did and kept."""

    def __init__(self, done: Down) -> None:
        super().__init__(f"{done.app} {done.instance} is down and its data path deleted, but these resources "
                         f"stay, with their secrets: {'; '.join(done.kept)}",
                         f"once the server answers, purge again: envplane down {done.env}{done.flags} "
                         "--purge (previews: `envplane preview gc` retries it)")
        self.done = done


def down(project: Project, env: str, pr: int | None = None, run: str | None = None, *, purge: bool = False,
         yes: bool = False, final_backup: bool = True, wait: bool = True, report: Report = ignore) -> Down:
    """Stop and remove an instance's containers and networks (only that instance's); `purge`
    also its volumes, data path, database, bucket, cache keys and secrets.

    NothingToDo when nothing of it is here; NeedsConfirmation when the purge deletes data
    meant to last and `yes` is not given; PartialPurge when a server kept resources. A
    staging or production purge takes a final backup first, unless `final_backup=False`.
    """
    target = _existing(project, env, pr, run)
    lifecycle.something_to_remove(project, target, purge, os.environ)  # else: no rows written
    if purge and target.env.keeps_data and not yes:
        raise purge_confirmation(target)
    session = open_session(project, report, wait)
    backup = _final_backup(session, project, target, report) if purge and final_backup else None
    removal = lifecycle.down(session, target, purge)
    done = Down(target.app, target.id, target.env.name, target.instance.flags, purge, removal.left,
                removal.kept, backup)
    if done.partial:
        raise PartialPurge(done)
    return done


def _existing(project: Project, env: str, pr: int | None, run: str | None) -> Target:
    """The instance `down` acts on, at the data path recorded at its first `up`."""
    target = actions.resolve_existing(project, env, pr, run, lifecycle.known_instances(project, os.environ))
    if target.env.runtime == "process":
        raise UsageError("the local env runs in the foreground of `envplane up local`; stop it there")
    return target


def purge_confirmation(target: Target) -> NeedsConfirmation:
    """Staging, production and dr hold data meant to last: a person confirms their purge."""
    what = (f"{target.app} {target.id}: its data path {target.data_path}, volumes, database, "
            "bucket, cache keys and secrets")
    return NeedsConfirmation(f"purging {target.env.name} deletes {what}",
                             f"pass --yes to confirm: envplane down {target.env.name} --purge --yes",
                             f"Purge {what}?", "purge cancelled: nothing was removed")


def _final_backup(session: Session, project: Project, target: Target, report: Report) -> str | None:
    """Issue 13: a persistent env is backed up before its purge deletes anything (its id)."""
    from envplane.dr import service as dr

    if not dr.needs_final_backup(target):
        return None
    outcome = dr.final_backup(session, project, target, os.environ,
                              lambda message: report(Note(f"warning: {message}", "warning")),
                              lambda kind, state, seconds, size: None)
    backup = outcome.result.manifest.id
    report(Note(f"final backup {backup} of {target.app} {target.id} taken (envplane backups, "
                "envplane restore --from ID)"))
    return backup


@dataclass(frozen=True)
class Deployment:
    """One deployment of an instance, with each step's timing (seconds: None while it runs)."""

    id: int
    version: str | None
    ref: str | None
    status: str
    actor: str
    colour: str | None
    started_at: datetime
    seconds: float | None
    steps: tuple[tuple[str, str, str, float | None], ...]  # (kind, description, status, seconds)


def deployments(project: Project, env: str, instance: str, limit: int = 10) -> list[Deployment]:
    """The instance's latest deployments, newest first, with their steps (reads only: no store
    is made where there is none)."""
    from envplane.state import instances
    from envplane.state.db import open_existing

    store = open_existing(project.root, project.environ.get("ENVPLANE_STATE_URL"))
    if store is None:
        return []
    try:
        found = []
        for d in instances.deployments(store, project.app, env, instance)[:limit]:
            steps = tuple((s.kind, mask_known(s.description), s.status, _seconds(s.started_at, s.finished_at))
                          for s in instances.steps(store, d.id))
            found.append(Deployment(d.id, d.version, d.ref, d.status, d.actor, d.colour, d.started_at,
                                    _seconds(d.started_at, d.finished_at), steps))
        return found
    finally:
        store.close()


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds(), 1)
