"""What a person looks at before a version moves up the ladder, read from the state store
without changing it: the dry run of a promotion or a rollback (what runs there now, what
would run, which gates decide, the approvals as they count now) and the releases that wait
for an approval. The MCP tools show these before they act; so can the API and dashboard.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envplane.errors import NotFound
from envplane.spec.load import Project

if TYPE_CHECKING:
    from envplane.release.signatures import Approval
    from envplane.spec.ladder import EnvConfig
    from envplane.state.db import Store
    from envplane.state.releases import Release


@dataclass(frozen=True)
class CheckedApproval:
    by: str  # the display name it was recorded with
    signed_by: str  # who the signature proved
    at: str
    valid: bool
    problem: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"by": self.by, "signed_by": self.signed_by, "at": self.at, "valid": self.valid,
                "problem": self.problem}


@dataclass(frozen=True)
class Move:
    """A version's move onto an env, not made: what would change and what decides it."""

    action: str  # promote, rollback
    app: str
    env: str
    version: str
    running: str | None  # the version the env runs now
    commit: str | None
    images: dict[str, str]  # service -> image ref
    gates: tuple[str, ...]  # the gates a promotion runs (a rollback: the approval's signature only)
    approval_needed: bool  # another person must approve (the env's approval gate)
    approvals: tuple[CheckedApproval, ...]
    ungated: str | None = None  # a rollback: why the version never passed the env's gates

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "app": self.app, "env": self.env, "version": self.version,
                "running": self.running, "commit": self.commit, "images": dict(self.images),
                "gates": list(self.gates), "approval_needed": self.approval_needed,
                "approvals": [a.as_dict() for a in self.approvals], "ungated": self.ungated}


def promotion(project: Project, version: str, env: str) -> Move:
    """What `promote VERSION --to ENV` would do, and the gates that would decide it."""
    from envplane.release.versions import require

    require(version)
    project.env(env)
    with _opened(project) as opened:
        store, release = _release(project, opened, version)
        return _promotion(project, store, release, version, env)


def _promotion(project: Project, store: Store, release: Release, version: str, env: str) -> Move:
    from envplane.release.gates import config_for

    config = project.env(env)
    gates = config_for(config.gates, config.promote_from is not None)
    names = tuple(name for name, on in (("order", gates.order), ("health", gates.health),
                                        ("p95", gates.p95_ms is not None), ("tests", gates.tests),
                                        ("coverage", gates.min_coverage is not None),
                                        ("security", gates.max_severity is not None),
                                        ("migrations", gates.migrations), ("changelog", gates.changelog),
                                        ("approval", gates.approval)) if on)
    return Move("promote", project.app, env, version, _running(project, store, env), release.commit,
                _images(release), names, gates.approval, _approvals(project, store, release, env))


def rollback(project: Project, env: str, to: str | None = None) -> Move:
    """What `rollback ENV [--to VERSION]` would do: the release it returns to (the one before
    the current, else `to`) and whether that one ever passed the env's gates."""
    from envplane.release.versions import require

    config = project.env(env)
    if to is not None:
        require(to)
    with _opened(project) as store:
        return _rollback(project, store, config, env, to)


def _rollback(project: Project, store: Store | None, config: EnvConfig, env: str, to: str | None) -> Move:
    from envplane.release import flow
    from envplane.state import releases as state

    current = _running(project, store, env)
    # a rollback's env has one instance, whose id is the env's name (names.Instance.id)
    history = [p.version for p in state.history(store, project.app, env, env)] if store else []
    earlier = to or next((v for v in history if v != current), None)
    if store is None or earlier is None:
        raise NotFound(f"{project.app} has no earlier release on {env} to return to",
                       f"`envplane releases {env}` lists what ran there")
    store, release = _release(project, store, earlier)
    needed = flow.only_through_gates(config)
    return Move("rollback", project.app, env, earlier, current, release.commit, _images(release),
                ("approval",) if needed else (), needed, _approvals(project, store, release, env),
                flow.ungated(project, store, earlier, env))


@dataclass(frozen=True)
class Waiting:
    """A release that runs on the env before a gated one and waits for its approval there."""

    version: str
    env: str  # the gated env it would go to
    from_env: str
    approvals: tuple[CheckedApproval, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "env": self.env, "from": self.from_env,
                "approvals": [a.as_dict() for a in self.approvals]}


def pending(project: Project) -> list[Waiting]:
    """Per env whose gates need an approval: each release running on the env it comes from
    and not on it, with its approvals for it as they count now (none valid: it waits)."""
    with _opened(project) as store:
        return [] if store is None else _pending(project, store)


def _pending(project: Project, store: Store) -> list[Waiting]:
    from envplane.release import flow
    from envplane.state import releases as state

    placed = state.placements(store, project.app)
    found = []
    for name, config in project.envs.items():
        source = config.promote_from
        if source is None or not flow.only_through_gates(config):
            continue
        there = {p.version for p in placed if p.env == name}
        for version in sorted({p.version for p in placed if p.env == source} - there):
            release = state.get_release(store, project.app, version)
            if release is not None:
                found.append(Waiting(version, name, source, _approvals(project, store, release, name)))
    return found


@contextmanager
def _opened(project: Project) -> Iterator[Store | None]:
    """The app's state store for reading, closed after; None when there is none (a read
    makes none)."""
    from envplane.state import audit_key
    from envplane.state.db import open_existing

    store = open_existing(project.root, os.environ.get("ENVPLANE_STATE_URL"),
                          audit_key.for_app(project.app, project.environ))
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def _release(project: Project, store: Store | None, version: str) -> tuple[Store, Release]:
    from envplane.state import releases as state

    release = state.get_release(store, project.app, version) if store else None
    if store is None or release is None:
        raise NotFound(f"no release {version} of {project.app}",
                       "see `envplane releases`; versions are made by `envplane release`")
    return store, release


def _running(project: Project, store: Store | None, env: str) -> str | None:
    from envplane.state import releases as state

    now = [p.version for p in state.placements(store, project.app) if p.env == env] if store else []
    return now[0] if now else None


def _images(release: Release) -> dict[str, str]:
    return {service: str(image.get("ref")) for service, image in sorted(release.images.items())}


def _approvals(project: Project, store: Store, release: Release, env: str) -> tuple[CheckedApproval, ...]:
    from envplane.release import flow

    checked: list[tuple[str, Approval]] = flow.approvals_now(project, store, release, env) \
        if project.spec.approvers else []
    return tuple(CheckedApproval(a.display_name, a.signer.names, a.at.isoformat(), a.problem is None,
                                 a.problem) for _, a in checked)
