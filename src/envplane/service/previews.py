"""Previews, one instance of the per-PR env per pull request: up, down, list, gc.

`down` and `gc` take the webhook's git worktree of a PR with its preview; `gc` only ever
picks previews (preview.gc_candidates), each purged under its lock after a second look.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from envplane import checkouts, lifecycle, preview
from envplane.errors import NothingToDo
from envplane.events import Note, Report, ignore
from envplane.preview import Collected
from envplane.service import instances
from envplane.spec.load import Project


def up(project: Project, pr: int, *, ref: str | None = None, build: bool = False, timeout: float = 120.0,
       wait: bool = True, report: Report = ignore) -> instances.Up:
    """Create or update the preview of a pull request: of the checkout's files; or, when
    `ref` is a commit sha the checkout is not at, of that commit fetched into the PR's own
    worktree and built from it, as the webhook does (the server's checkout stays as it is)."""
    env = preview.preview_env(project.envs)
    if ref is None or not checkouts.other_commit(project, ref):
        return instances.up(project, env, pr, ref=ref, build=build, timeout=timeout, wait=wait, report=report)
    from envplane.names import Instance
    from envplane.service.session import open_session
    from envplane.webhook_runner import checked_head

    session = open_session(project, report, wait)
    with session.holding(project.app, env, Instance(env, pr).id):  # lock, check out, deploy
        head, target = checked_head(project, checkouts.of_app(project), env, pr, ref)
        return instances.up_target(replace(session, project=head), target, ref=ref, build=True,
                                   timeout=timeout, report=report)


def checked_ref(project: Project, ref: str | None) -> None:
    """For a caller away from the checkout (API, MCP): a ref is the checkout's commit, or a
    full commit sha that `up` fetches from the checkout's remote (UsageError otherwise)."""
    checkouts.checked_ref(project, ref)


@dataclass(frozen=True)
class PreviewDown:
    """A preview destroyed; or, when nothing of it ran here (`down` is None), only the
    webhook's worktree of its PR removed."""

    pr: int
    down: instances.Down | None
    worktree: bool  # the webhook's worktree of the PR was removed

    def as_dict(self) -> dict[str, Any]:
        if self.down is not None:
            return self.down.as_dict()
        return {"instance": f"pr-{self.pr}", "purged": True, "removed": ["webhook worktree"]}


def down(project: Project, pr: int, *, wait: bool = True, report: Report = ignore) -> PreviewDown:
    """Destroy a preview: containers, networks, volumes, data path, routes, its resources and
    secrets, and the webhook's worktree of the PR. NothingToDo when none of it is here;
    PartialPurge (worktree kept) when a server kept resources."""
    env = preview.preview_env(project.envs)
    try:
        done = instances.down(project, env, pr, purge=True, wait=wait, report=report)
    except NothingToDo:
        if not drop_worktree(project, pr):
            raise
        report(Note(f"removed the webhook's worktree of PR {pr}; nothing else of it was here"))
        return PreviewDown(pr, None, True)
    return PreviewDown(pr, done, drop_worktree(project, pr))


def drop_worktree(project: Project, pr: int) -> bool:
    """The webhook's git worktree of the PR goes with its preview (True: there was one)."""
    from envplane import checkouts

    if not (project.root / checkouts.WORKTREES / f"pr-{pr}").exists():
        return False
    checkouts.Checkouts.of(project).remove(pr)
    return True


@dataclass(frozen=True)
class Preview:
    """One preview as the state store records it."""

    instance: str  # pr-4
    status: str  # up, down, failed, purged, partial, ...
    ref: str | None
    last_deploy_at: datetime | None
    closed_at: datetime | None  # when its PR closed

    def as_dict(self) -> dict[str, Any]:
        return {"pr": self.instance, "status": self.status, "ref": self.ref,
                "last_deploy_at": _moment(self.last_deploy_at), "closed_at": _moment(self.closed_at)}


def _moment(moment: datetime | None) -> str | None:
    return str(moment) if moment is not None else None


@dataclass(frozen=True)
class Previews:
    app: str
    env: str
    previews: tuple[Preview, ...]

    @property
    def partial(self) -> bool:
        """Some purge kept resources (and their secrets) whose server was missing or down."""
        from envplane.state.instances import PARTIAL

        return any(p.status == PARTIAL for p in self.previews)

    def as_dict(self) -> dict[str, Any]:
        return {"app": self.app, "env": self.env, "previews": [p.as_dict() for p in self.previews]}


def list_previews(project: Project) -> Previews:
    """The previews the state store knows (reads only: no store is made)."""
    env = preview.preview_env(project.envs)
    return Previews(project.app, env, tuple(
        Preview(r.instance, r.status, r.ref, r.last_deploy_at, r.closed_at)
        for r in lifecycle.records(project, os.environ) if r.env == env))


@dataclass(frozen=True)
class Collection:
    """What one `gc` did (or, a dry run, would do) with each preview it picked."""

    dry_run: bool
    previews: tuple[Collected, ...]
    ever_deployed: bool = True  # False: no preview was ever deployed here, and no store was made

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "previews": [c.as_dict() for c in self.previews]}


def gc(project: Project, *, ttl: str | None = None, idle: str = "14d", dry_run: bool = False,
       now: datetime | None = None, report: Report = ignore,
       environ: Mapping[str, str] | None = None) -> Collection:
    """Destroy previews of PRs closed longer than `ttl` ago (default: the env's ttl, else 7d)
    and previews idle for `idle`, and retry partial purges; never anything else. Each one's
    outcome is reported as it ends. `environ` (default: the process's) names the state store
    and who acts (the server's scheduler passes its own)."""
    env = preview.preview_env(project.envs)
    ttl_left, idle_for = preview.duration(ttl or project.envs[env].ttl or "7d"), preview.duration(idle)
    environ = os.environ if environ is None else environ
    if not any(r.env == env for r in lifecycle.records(project, environ)):
        return Collection(dry_run, (), ever_deployed=False)
    done = preview.collect(lifecycle.open_session(project, environ), ttl_left, idle_for, dry_run,
                           now or datetime.now(UTC), on_collected=lambda c: report(Note(c.line())))
    for collected in done:
        if collected.outcome in ("destroyed", "partial"):  # its containers are gone: so goes its worktree
            drop_worktree(project, int(collected.instance.removeprefix("pr-")))
    return Collection(dry_run, tuple(done))
