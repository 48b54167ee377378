"""Target + observed facts -> Plan: the ordered steps `envplane up` runs. Pure data.

Each step says what it changes or why it changes nothing (pyinfra's noop reasons), so
`envplane plan` shows exactly what `up` would do. Observed facts come from backends at
apply time; with none (plain `envplane plan`) every resource is assumed missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from envplane.commands import compose as compose_cmd
from envplane.spec.models import HookName, HookSpec
from envplane.target import Target

Action = Literal["check", "create", "run", "noop"]


@dataclass(frozen=True)
class Step:
    kind: str
    action: Action
    description: str
    resource: str = ""
    reason: str = ""
    command: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "action": self.action,
            "description": self.description,
            "resource": self.resource,
            "reason": self.reason,
            "command": list(self.command),
        }


@dataclass(frozen=True)
class Observed:
    """What exists already, as `kind:name` keys (e.g. "database:finance_report_staging")."""

    exists: frozenset[str] = frozenset()

    def has(self, kind: str, name: str) -> bool:
        return f"{kind}:{name}" in self.exists


@dataclass(frozen=True)
class Plan:
    target: Target
    steps: tuple[Step, ...] = field(default_factory=tuple)

    @property
    def changes(self) -> int:
        return sum(1 for s in self.steps if s.action in ("create", "run"))


def instance_dir(root: Path, target: Target) -> Path:
    """Where an instance's rendered files live: .envplane/instances/<env>/<instance>/."""
    return root / ".envplane" / "instances" / target.env.name / target.id


def compose_file(root: Path, target: Target) -> Path:
    return instance_dir(root, target) / "compose.yaml"


def env_files(root: Path, target: Target) -> dict[str, str]:
    """service -> the env file of its resource variables and secrets (compose runtimes)."""
    if target.env.runtime == "process":
        return {}
    folder = instance_dir(root, target)
    return {s.name: str(folder / f"{s.name}.env") for s in target.services if s.uses or s.secrets}


def plan_up(target: Target, root: Path, observed: Observed | None = None, build: bool = False,
            hooks: Mapping[HookName, HookSpec] | None = None) -> Plan:
    """The steps of `up`. Like `docker compose up`, images are built when missing;
    `build=True` (`up --build`, a new commit of a PR) rebuilds them first. The spec's
    `pre_deploy` and `migrate` hooks run before the new containers start, `post_deploy`
    once they are healthy."""
    seen = observed or Observed()
    hooks = hooks or {}
    steps: list[Step] = [
        Step("isolation", "check", "check the isolation invariant against every other instance"),
        Step("lock", "run", f"take the lock of {target.app}/{target.id}"),
        *_directories(target, seen),
        *_resources(target, seen),
    ]
    if target.env.runtime == "process":
        steps += _process_steps(target)
    else:
        steps += _compose_steps(target, root, build, hooks)
    steps += _health_steps(target)
    if target.env.runtime != "process" and "post_deploy" in hooks:
        steps.append(hook_step("post_deploy", hooks["post_deploy"]))
    if target.domain and target.env.runtime != "process" and target.public_urls():
        steps.append(
            Step("route", "create", f"route {target.domain} to the public services", target.domain)
        )
    steps.append(Step("record", "run", "record the deployment in the state store and audit log"))
    return Plan(target, tuple(steps))


def _directories(target: Target, seen: Observed) -> list[Step]:
    paths = [target.data_path, *target.volume_paths.values()]
    return [
        _ensure(seen, "directory", path, f"create data folder {path}", f"folder {path} exists")
        for path in paths
    ]


def _resources(target: Target, seen: Observed) -> list[Step]:
    """Secrets first (the role and the Redis user are created with them), then each resource."""
    local = target.env.runtime == "process"
    prefix = target.secrets_prefix
    steps: list[Step] = []
    if not local and (target.database or target.redis_prefix):
        steps.append(_ensure(seen, "secrets", prefix, f"generate the missing passwords under {prefix}/",
                             f"passwords under {prefix}/ exist"))
    if target.database:
        if local:
            steps.append(_ensure(seen, "sqlite", target.database,
                                 f"create SQLite database {target.database}.db in the data folder",
                                 f"SQLite database {target.database}.db exists"))
        else:
            steps.append(_ensure(seen, "database", target.database,
                                 f"create role and database {target.database} (the role owns it)",
                                 f"role and database {target.database} exist"))
    if target.bucket:
        what = "folder" if local else "bucket"
        steps.append(_ensure(seen, "bucket", target.bucket, f"create {what} {target.bucket}",
                             f"reuse {what} {target.bucket}"))
    if target.redis_prefix and not local:
        steps.append(_ensure(seen, "cache", target.redis_prefix,
                             f"create Redis user limited to keys {target.redis_prefix}*",
                             f"Redis user for {target.redis_prefix}* exists"))
    users = [s.name for s in target.services if s.uses or s.secrets]
    if users and not local:
        steps.append(Step("envfile", "create", "write the connection variables of "
                          + ", ".join(users) + " to env files only the owner can read"))
    return steps


def _ensure(seen: Observed, kind: str, name: str, create: str, exists: str) -> Step:
    if seen.has(kind, name):
        return Step(kind, "noop", exists, name, reason="already there")
    return Step(kind, "create", create, name)


def _process_steps(target: Target) -> list[Step]:
    return [
        Step("process", "run", f"start {s.name}: {s.dev}", s.name, command=("sh", "-c", s.dev))
        for s in target.services
        if s.dev
    ]


HOOKS_BEFORE_START: tuple[HookName, ...] = ("pre_deploy", "migrate")  # post_deploy: once healthy


def hook_step(name: HookName, hook: HookSpec) -> Step:
    return Step(f"hook:{name}", "run", f"run the {name} hook in {hook.service}: {hook.command}",
                hook.service, command=("sh", "-c", hook.command))


def _compose_steps(target: Target, root: Path, build: bool,
                   hooks: Mapping[HookName, HookSpec]) -> list[Step]:
    file = str(compose_file(root, target))
    steps = [Step("render", "create", f"write the instance's Compose file {file}", file)]
    if build and any("build" in svc for svc in target.compose.data.get("services", {}).values()):
        steps.append(
            Step("build", "run", "build the images of services with `build:`",
                 command=tuple(compose_cmd.build(target.project, file)))
        )
    published = [p for s in target.services for p in s.ports if p.published is not None]
    if published:
        ports = ", ".join(f"{p.published}/{p.protocol}" for p in published)
        steps.append(Step("ports", "check", "check that the instance's host ports are free "
                          "(or already its own)", ports))
    steps += [hook_step(name, hooks[name]) for name in HOOKS_BEFORE_START if name in hooks]
    steps.append(
        Step("start", "run", f"start Compose project {target.project}", target.project,
             command=tuple(compose_cmd.up(target.project, file)))
    )
    return steps


def _health_steps(target: Target) -> list[Step]:
    steps = []
    for s in target.services:
        has_healthcheck = "healthcheck" in target.compose.data.get("services", {}).get(s.name, {})
        if target.env.runtime != "process" and has_healthcheck:
            steps.append(Step("health", "check", f"wait until {s.name} is healthy (its healthcheck)", s.name))
        elif s.health:
            steps.append(Step("health", "check", f"wait until {s.name} answers {s.health}", s.name))
    return steps
