"""An env instance as a Swarm stack file (`docker stack deploy`). Pure: data in, data out.

It starts from the instance's Compose file (compose/render.py: instance names, labels,
ports of the env's block) and changes what a stack needs:
- no `name:`, `container_name`, `build`, `depends_on`, `restart` (matrix.IGNORED says why);
- published ports are host-mode ports (this kernel-independent path needs no routing mesh
  or VIP), one task per node for a service that publishes one, so two never collide;
- networks are overlay networks, named per instance as on compose;
- `deploy:` gets replicas and placement from envplane.yaml, a rolling update that starts
  the new task before it stops the old one (`order: start-first`; stop-first for a
  stateful service, whose data two copies must never share) and rolls back on failure;
- file secrets and configs are named per instance and by their content (Docker's are
  immutable: a new content is a new name, and a rolling update moves the tasks over);
- envplane's credentials (DATABASE_URL, the S3 key, …) are one Docker secret per service,
  mounted at /run/secrets/envplane.env and read into the environment by a wrapper around
  the image's own entrypoint: their values are in the swarm's encrypted store only, never
  in this file nor in the service's spec.
"""

from __future__ import annotations

import copy
import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envplane.spec.load import Project
from envplane.spec.models import Spec
from envplane.swarm.matrix import DEPLOY_OWN, IGNORED, replicas, swarm_spec
from envplane.target import LABEL_SERVICE, ServiceTarget, Target

ENV_SECRET_TARGET = "envplane.env"  # /run/secrets/envplane.env in the task
ENV_SECRET_KEY = "envplane-env-{service}"  # its key in the stack file
# Read the credentials into the environment, then become the image's own command.
WRAPPER = ("/bin/sh", "-c", f'set -a && . /run/secrets/{ENV_SECRET_TARGET} && set +a && exec "$@"',
           "envplane")
STATEFUL_PLACEMENT = "node.role == manager"  # its volumes are local to the node it first ran on
UPDATE = {"parallelism": 1, "delay": "2s", "failure_action": "rollback", "monitor": "10s",
          "max_failure_ratio": 0}
ROLLBACK = {"parallelism": 1, "delay": "1s", "failure_action": "pause", "monitor": "5s"}
DROPPED = frozenset({*IGNORED, "build", "env_file", "extra_hosts"})  # extra_hosts: added back below


@dataclass(frozen=True)
class Command:
    """An image's own ENTRYPOINT and CMD (from `docker image inspect`)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


@dataclass(frozen=True)
class StackInputs:
    """What the stack file takes from outside the spec, found at apply time."""

    images: Mapping[str, str] = field(default_factory=dict)  # service -> image ID or registry digest
    env_secrets: Mapping[str, str] = field(default_factory=dict)  # service -> its credentials' secret
    commands: Mapping[str, Command] = field(default_factory=dict)  # service -> its image's command
    contents: Mapping[str, str] = field(default_factory=dict)  # "secrets.KEY"/"configs.KEY" -> sha256


def stack_name(target: Target) -> str:
    """One stack per instance, named as its Compose project (`app-staging`, `app-pr-3`)."""
    return target.project


def object_name(target: Target, kind: str, key: str, digest: str) -> str:
    """A Docker secret or config of the instance, by its content: at most 64 characters,
    and two instances never share one (the hash covers the project and key)."""
    mark = hashlib.sha256(f"{target.project}\0{kind}\0{key}\0{digest}".encode()).hexdigest()[:12]
    return f"{target.project}_{key}"[:50].rstrip("_.-") + "_" + mark


def env_secret_name(target: Target, service: str, text: str) -> str:
    """The Docker secret holding a service's credentials: named by its content."""
    return object_name(target, "env", service, hashlib.sha256(text.encode()).hexdigest())


def env_secret_text(values: Mapping[str, str]) -> str:
    """The credentials as `/bin/sh` reads them (`. file` with `set -a`): quoted, one a line."""
    for key in values:
        if not key.isidentifier():
            raise ValueError(f"{key!r} is not a variable name a shell can set")
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in sorted(values.items()))


def image_of(target: Target, name: str) -> str:
    """The image a service runs: its `image:`, or the name Compose gives what it builds."""
    svc = target.compose.services.get(name) or {}
    return str(svc.get("image") or f"{target.project}-{name}")


def stack(spec: Spec, target: Target, compose: Mapping[str, Any], inputs: StackInputs) -> dict[str, Any]:
    """The stack file of the instance; `compose` is compose.render.render()'s output for it
    (rendered without env files: credentials come as Docker secrets)."""
    data = copy.deepcopy(dict(compose))
    services: dict[str, Any] = {}
    for service in target.services:
        services[service.name] = _service(spec, target, service, data["services"][service.name], inputs)
    out: dict[str, Any] = {"services": services}
    out["networks"] = {key: _overlay(value) for key, value in (data.get("networks") or {}).items()}
    if data.get("volumes"):
        out["volumes"] = data["volumes"]
    for kind in ("secrets", "configs"):
        declared = data.get(kind) or {}
        named = {key: _named(target, kind, key, value, inputs) for key, value in declared.items()}
        if kind == "secrets":
            named.update({ENV_SECRET_KEY.format(service=svc): {"external": True, "name": secret}
                          for svc, secret in sorted(inputs.env_secrets.items())})
        if named:
            out[kind] = named
    return out


def _service(spec: Spec, target: Target, service: ServiceTarget, raw: Mapping[str, Any],
             inputs: StackInputs) -> dict[str, Any]:
    svc = {k: v for k, v in raw.items() if k not in DROPPED and k != "container_name"}
    svc["image"] = inputs.images.get(service.name) or _escape(image_of(target, service.name))
    svc.pop("scale", None)
    if "ports" in svc:
        svc["ports"] = [{"target": p.target, "published": p.published, "protocol": p.protocol, "mode": "host"}
                        for p in service.ports if p.published is not None]
        if not svc["ports"]:
            del svc["ports"]
    secret = inputs.env_secrets.get(service.name)
    if secret is not None:
        own = svc.get("environment") or {}
        svc["environment"] = {k: v for k, v in own.items() if k not in service.provided}
        svc["secrets"] = [*(svc.get("secrets") or []), {"source": ENV_SECRET_KEY.format(service=service.name),
                                                          "target": ENV_SECRET_TARGET, "mode": 0o400}]
        svc.update(_wrapped(raw, inputs.commands.get(service.name, Command())))
    extra = [h for h in raw.get("extra_hosts") or [] if not str(h).endswith(":host-gateway")]
    if service.uses:  # resource servers on a node are reached as on compose
        extra.append("host.docker.internal:host-gateway")
    if extra:
        svc["extra_hosts"] = extra
    svc["deploy"] = _deploy(spec, target, service, raw.get("deploy") or {}, bool(svc.get("ports")))
    return svc


def _deploy(spec: Spec, target: Target, service: ServiceTarget, own: Mapping[str, Any],
            host_ports: bool) -> dict[str, Any]:
    deploy = {k: copy.deepcopy(v) for k, v in own.items() if k not in DEPLOY_OWN}
    deploy["mode"] = "replicated"
    deploy["replicas"] = replicas(spec, target, service.name)
    placement = dict(deploy.get("placement") or {})
    given = swarm_spec(spec, service.name)
    constraints = [*(placement.get("constraints") or []), *(given.constraints if given else [])]
    if service.stateful and not constraints:
        constraints = [STATEFUL_PLACEMENT]
    if constraints:
        placement["constraints"] = list(dict.fromkeys(constraints))
    if host_ports:  # a host port is one per node: a second task there could not bind it
        placement["max_replicas_per_node"] = 1
    if placement:
        deploy["placement"] = placement
    deploy["labels"] = {**_labels(deploy.get("labels")), **target.labels, LABEL_SERVICE: service.name}
    # Start-first needs a node without the service's host port (replicas < nodes); a stateful
    # service stops first: two copies would share its data.
    order = "stop-first" if service.stateful else "start-first"
    deploy["update_config"] = {**UPDATE, "order": order}
    deploy["rollback_config"] = {**ROLLBACK, "order": order}
    # No VIP: this path works without IPVS (a service's name resolves to its tasks' addresses).
    deploy["endpoint_mode"] = "dnsrr"
    return deploy


def _wrapped(raw: Mapping[str, Any], image: Command) -> dict[str, Any]:
    """Entrypoint and command that read the credentials, then run what Compose would run."""
    entry = _words(raw["entrypoint"]) if "entrypoint" in raw else list(image.entrypoint)
    # Compose drops the image's CMD when the file gives a new entrypoint.
    cmd = _words(raw["command"]) if "command" in raw else [] if "entrypoint" in raw else list(image.cmd)
    if not entry and not cmd:
        raise ValueError("the image has no command to run after reading its credentials")
    return {"entrypoint": [_escape(w) for w in WRAPPER], "command": [*entry, *cmd]}


def _words(value: Any) -> list[str]:
    """A Compose command: a list as is (already escaped by render), a string split as Compose does."""
    if isinstance(value, list):
        return [str(v) for v in value]
    return shlex.split(str(value))


def _named(target: Target, kind: str, key: str, raw: Any, inputs: StackInputs) -> dict[str, Any]:
    value: dict[str, Any] = dict(raw or {})
    if value.get("external"):
        return value
    digest = inputs.contents.get(f"{kind}.{key}", "")
    value["name"] = object_name(target, kind, key, digest)
    value["labels"] = {**_labels(value.get("labels")), **target.labels}
    return value


def _overlay(raw: Any) -> dict[str, Any]:
    value: dict[str, Any] = dict(raw or {})
    if not value.get("external"):
        value["driver"] = "overlay"
    return value


def _labels(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return dict(str(item).partition("=")[::2] for item in value)


def _escape(value: str) -> str:
    return value.replace("$", "$$")


def instance_stack(project: Project, target: Target, inputs: StackInputs | None = None) -> dict[str, Any]:
    """The stack file of an instance of the project (`envplane render --format swarm` and `up`)."""
    from envplane.compose.render import render

    compose = render(target, project.compose[0].file.parent)
    return stack(project.spec, target, compose, inputs or StackInputs())
