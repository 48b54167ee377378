"""`plan`: one instance resolved, checked against every other one known, and the steps
`up` would run, with what of its resources exists already (read-only: changes nothing)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from envplane import actions
from envplane.spec.load import Project
from envplane.target import Target

if TYPE_CHECKING:
    from envplane.plan import Observed, Plan


@dataclass(frozen=True)
class Planned:
    target: Target
    plan: Plan
    notes: tuple[str, ...] = field(default_factory=tuple)  # why some resources could not be looked at

    def as_dict(self) -> dict[str, Any]:
        return {**actions.plan_dict(self.plan), "notes": list(self.notes)}


def known(project: Project) -> actions.Known:
    """What the state store knows of the app's instances; with no store yet, nothing (and no
    store is made). A SQLite store is read without SQLAlchemy (#11)."""
    return actions.known_instances(project, os.environ)


def plan(project: Project, env: str, pr: int | None = None, run: str | None = None) -> Planned:
    target = actions.resolve_checked(project, env, pr, run, known(project))
    observed, notes = observe(project, target)
    return Planned(target, actions.plan(project, target, observed), tuple(notes))


def observe(project: Project, target: Target) -> tuple[Observed | None, list[str]]:
    """What of the instance's resources exists, when the spec declares any (read-only)."""
    if not (target.database or target.bucket or target.redis_prefix):
        return None, []
    from envplane.plan import Observed
    from envplane.provision import Servers, observe

    keys, notes = observe(target, Servers.for_target(target, os.environ), project.root, os.environ)
    return Observed(keys), notes
