"""The platform layer (PostgreSQL, Redis and S3 per env, an app of its own): up and down of
one or more envs' platforms. Every env is checked before any of them changes.

The platform keeps its admin secrets in its own file store: its project carries
ENVPLANE_SECRETS=file (layer.open_platform) and everything here reads the project's
variables, so nothing is set process-wide, where a server's other apps would see it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envplane.errors import NeedsConfirmation, NothingToDo
from envplane.events import Note, Report, ignore
from envplane.service import instances

if TYPE_CHECKING:
    from envplane.spec.load import Project
    from envplane.target import Target


def _platform() -> Project:
    from envplane.platform import layer

    return layer.open_platform(os.environ)


@dataclass(frozen=True)
class PlatformUp:
    env: str
    up: instances.Up
    generated: tuple[str, ...]  # admin secrets made on this first use
    answering: tuple[str, ...]  # the servers that answered a request made with their admin credentials

    def as_dict(self) -> dict[str, Any]:
        return {**self.up.as_dict(), "env": self.env, "generated": list(self.generated),
                "answering": list(self.answering)}


def up(envs: list[str], *, timeout: float = 120.0, wait: bool = True,
       report: Report = ignore) -> list[PlatformUp]:
    """Bring each env's platform up (its passwords generated on first use) and wait until
    each server answers a request made with its admin credentials."""
    from envplane.platform import layer

    project = _platform()
    # Every env is checked before any of them changes: a refusal makes no secret anywhere.
    targets = [layer.check_before_up(project, env) for env in dict.fromkeys(envs)]
    done = []
    for target in targets:
        env = target.env.name
        made = layer.ensure_secrets(target, layer.store(project, project.environ))
        if made:
            report(Note(f"generated {len(made)} admin secret(s) under secret/data/platform/{env}/"))
        started = instances.up(project, env, timeout=timeout, wait=wait, report=report)
        answered = layer.wait_ready(env, project.environ, timeout)
        report(Note(f"✓ answering: {', '.join(answered)}"))
        done.append(PlatformUp(env, started, tuple(made), tuple(answered)))
    return done


@dataclass(frozen=True)
class PlatformDown:
    """One env's platform stopped (`down`), or nothing of it ran (`nothing` says so) and,
    with a purge, only its admin secrets were removed."""

    env: str
    down: instances.Down | None
    nothing: NothingToDo | None = None
    secrets_removed: bool = False

    def as_dict(self) -> dict[str, Any]:
        if self.down is not None:
            return {**self.down.as_dict(), "env": self.env, "secrets_removed": self.secrets_removed}
        message = self.nothing.message if self.nothing else ""
        return {"env": self.env, "nothing_to_do": not self.secrets_removed, "message": message,
                "secrets_removed": self.secrets_removed}


def down(envs: list[str], *, purge: bool = False, yes: bool = False, wait: bool = True,
         report: Report = ignore) -> list[PlatformDown]:
    """Stop each env's platform; `purge` also deletes its data and admin secrets (no final
    backup: the apps on the platform back up their own data). A purge of a platform meant
    to last needs `yes` (NeedsConfirmation, before any env changes)."""
    from envplane.platform import layer
    from envplane.target import resolve

    project = _platform()
    secrets = layer.store(project, project.environ)
    # Every env is checked before any of them stops, as `up` does.
    targets = [layer.with_platform(resolve(project, env)) for env in dict.fromkeys(envs)]
    if purge and not yes:
        _confirm_purges(project, targets)
    done = []
    for target in targets:
        env = target.env.name
        try:
            stopped = instances.down(project, env, purge=purge, yes=True, final_backup=False, wait=wait,
                                     report=report)
        except NothingToDo as nothing:
            # Nothing ran, but a `platform up` stopped after making its secrets leaves them.
            left = purge and bool(secrets.list(target.secrets_prefix))
            if left:
                secrets.delete_tree(target.secrets_prefix)
                report(Note(f"platform {env} was not running; its admin secrets are removed"))
            done.append(PlatformDown(env, None, nothing, left))
            continue
        if purge:
            secrets.delete_tree(target.secrets_prefix)
        done.append(PlatformDown(env, stopped, None, purge))
    return done


def _confirm_purges(project: Project, targets: list[Target]) -> None:
    """The platforms of envs meant to last (staging, production, dr) are purged only when
    confirmed (those with something to remove); asked once, for all, before any env changes."""
    asked = [instances.purge_confirmation(t) for t in targets if t.env.keeps_data and _to_remove(project, t)]
    if not asked:
        return
    if len(asked) == 1:
        raise asked[0]
    raise NeedsConfirmation("; ".join(a.message for a in asked),
                            "pass --yes to confirm: envplane platform down ENV… --purge --yes",
                            "Purge " + "; ".join(a.question.removeprefix("Purge ").removesuffix("?")
                                                 for a in asked) + "?",
                            asked[0].declined)


def _to_remove(project: Project, target: Target) -> bool:
    from envplane import lifecycle

    try:
        lifecycle.something_to_remove(project, target, True, project.environ)
    except NothingToDo:
        return False
    return True
