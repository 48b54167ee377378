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

from envplane.checks import checks_for, describe_wait
from envplane.commands import compose as compose_cmd
from envplane.spec.models import HookName, HookSpec
from envplane.target import Target

Action = Literal["check", "create", "run", "noop"]
Phase = Literal["preflight", "apply"]


@dataclass(frozen=True)
class Step:
    kind: str
    action: Action
    description: str
    resource: str = ""
    reason: str = ""
    command: tuple[str, ...] = ()
    phase: Phase = "apply"  # pre-flight steps change nothing anyone uses; they run first

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "action": self.action,
            "description": self.description,
            "resource": self.resource,
            "reason": self.reason,
            "command": list(self.command),
            "phase": self.phase,
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


def trial_file(root: Path, target: Target) -> Path:
    """The new Compose file as the pre-flight creates it beside the instance (preflight.py)."""
    return instance_dir(root, target) / "trial" / "compose.yaml"


def env_files(root: Path, target: Target) -> dict[str, str]:
    """service -> the env file of its resource variables and secrets (compose runtimes)."""
    if target.env.runtime == "process":
        return {}
    folder = instance_dir(root, target)
    return {s.name: str(folder / f"{s.name}.env") for s in target.services if s.uses or s.secrets}


def plan_up(target: Target, root: Path, observed: Observed | None = None, build: bool = False,
            hooks: Mapping[HookName, HookSpec] | None = None, registry: str | None = None) -> Plan:
    """The steps of `up`: under the instance's lock, the pre-flight checks first (nothing is
    made or touched until each has passed), then the changes. Like `docker compose up`,
    images are built when missing; `build=True` (`up --build`, a new commit of a PR)
    rebuilds them first. The spec's `pre_deploy` and `migrate` hooks run before the new
    containers start, `post_deploy` once they are healthy."""
    seen = observed or Observed()
    hooks = hooks or {}
    steps: list[Step] = [
        Step("lock", "run", f"take the lock of {target.app}/{target.id}", phase="preflight"),
        *preflight_steps(target, root, build),
    ]
    record = Step("record", "run", "record the deployment in the state store and audit log")
    if target.env.runtime == "kubernetes":  # no host folders: the cluster holds the data
        from envplane.kubernetes.plan import steps as kube_steps

        return Plan(target, (*steps, *kube_steps(target, root, _resources(target, seen)), record))
    if target.env.runtime == "swarm":  # a stack on the manager of hosts:
        from envplane.swarm.plan import steps as swarm_steps

        return Plan(target, (*steps, *swarm_steps(target, root, _directories(target, seen),
                                                   _resources(target, seen), registry), record))
    steps += [*_directories(target, seen), *_resources(target, seen)]
    if target.env.runtime == "process":
        steps += _process_steps(target)
    else:
        steps += _compose_steps(target, root, hooks)
    steps += _health_steps(target)
    if target.env.runtime != "process" and "post_deploy" in hooks:
        steps.append(hook_step("post_deploy", hooks["post_deploy"]))
    if target.domain and target.env.runtime != "process" and target.public_urls() \
            and target.env.routing == "caddy":  # Traefik routes by the rendered labels
        steps.append(
            Step("route", "create", f"route {target.domain} to the public services", target.domain)
        )
    steps.append(record)
    return Plan(target, tuple(steps))


def preflight_steps(target: Target, root: Path, build: bool = False) -> list[Step]:
    """What `up` proves before it changes anything (preflight.py says how)."""
    steps = [_check("isolation", "check the isolation invariant against every other instance")]
    if target.env.runtime != "compose":  # processes in the foreground; a cluster (kubernetes/)
        return steps
    published = [p for s in target.services for p in s.ports if p.published is not None]
    if published:
        ports = ", ".join(f"{p.published}/{p.protocol}" for p in published)
        steps.append(_check("ports", "check that the instance's host ports are free on this engine "
                            "(or already its own)", ports))
    servers = [name for name, on in (("PostgreSQL", target.database), ("S3", target.bucket),
                                     ("Redis", target.redis_prefix)) if on]
    if servers:
        steps.append(_check("servers", f"check that {', '.join(servers)} answer with the admin "
                            "credentials"))
    secrets = ", ".join(f"{key} ({s.name})" for s in target.services for key in s.secrets)
    if secrets:
        steps.append(_check("user-secrets", f"check that the services' secrets are set: {secrets}"))
    file = str(trial_file(root, target))
    if build and any("build" in svc for svc in target.compose.data.get("services", {}).values()):
        steps.append(Step("build", "run", "build the images of services with `build:`", phase="preflight",
                          command=tuple(compose_cmd.build(target.project, file))))
    steps += [
        _check("images", "check that every image is on the engine (build or pull the missing ones)"),
        _check("trial", "create the new containers in a trial project, never started, and find "
               "each one's command in its image (skipped when none of the instance's containers "
               "runs: nothing running to protect)"),
    ]
    return steps


def _check(kind: str, description: str, resource: str = "") -> Step:
    return Step(kind, "check", description, resource, phase="preflight")


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
        if not local:  # the admin key never reaches a container: the instance gets its own
            steps.append(_ensure(seen, "s3key", target.bucket,
                                 f"create the instance's S3 key, limited to bucket {target.bucket}",
                                 f"the instance's S3 key exists, limited to bucket {target.bucket}"))
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


def _compose_steps(target: Target, root: Path, hooks: Mapping[HookName, HookSpec]) -> list[Step]:
    file = str(compose_file(root, target))
    steps = [Step("render", "create", f"write the instance's Compose file {file}", file)]
    steps += [hook_step(name, hooks[name]) for name in HOOKS_BEFORE_START if name in hooks]
    steps.append(
        Step("start", "run", f"start Compose project {target.project}", target.project,
             command=tuple(compose_cmd.up(target.project, file)))
    )
    return steps


def _health_steps(target: Target) -> list[Step]:
    """A step per service that has something to wait for (checks.py says what)."""
    return [Step("health", "check", describe_wait(c, target.service(c.service).health), c.service)
            for c in checks_for(target)]
