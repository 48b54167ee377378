"""Run an instance's plan on the swarm runtime: Applier.up and Applier.down hand envs with
`runtime: swarm` to these functions. Resource and folder steps run as for compose (through
the Applier); the rest go to the manager through SwarmRuntime.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envplane.backends.routing.caddy import Route, routes_for
from envplane.backends.runtime.compose import ComposeRuntime
from envplane.backends.runtime.swarm import SwarmRuntime
from envplane.compose.render import render, to_yaml
from envplane.errors import BackendError, UsageError
from envplane.hosts import images
from envplane.hosts.engine import LOCAL, Engine
from envplane.plan import Plan, Step, compose_file, instance_dir
from envplane.run import run
from envplane.secret import Secret
from envplane.swarm.plan import stack_file
from envplane.swarm.render import (
    Command,
    StackInputs,
    env_secret_name,
    env_secret_text,
    image_of,
    stack,
    stack_name,
)
from envplane.target import Target

if TYPE_CHECKING:
    from envplane.apply import Applier, Outcome, Removal

RESOURCE_STEPS = {"directory", "secrets", "database", "bucket", "s3key", "cache"}


@dataclass
class Rollout:
    """What the steps of one `up` hand on to the next."""

    images: dict[str, str] = field(default_factory=dict)  # service -> what the stack file names
    local: dict[str, str] = field(default_factory=dict)  # service -> its pinned tag on this machine
    env_secrets: dict[str, str] = field(default_factory=dict)
    keep: set[str] = field(default_factory=set)  # the secrets and configs the stack file names
    listen: str | None = None


def up(applier: Applier, plan: Plan) -> Outcome:
    target = plan.target
    runtime = SwarmRuntime(target.engine)
    rollout = Rollout()
    outcome = applier.run_steps(plan, lambda step: _run(applier, runtime, target, rollout, step))
    outcome.urls = target.urls(rollout.listen, None)
    return outcome


def _run(applier: Applier, runtime: SwarmRuntime, target: Target, rollout: Rollout, step: Step) -> str:
    root = applier.project.root
    match step.kind:
        case "isolation" | "record":
            return "ok"
        case "swarm":
            runtime.check()
        case kind if kind in RESOURCE_STEPS:
            return applier.run_step(step, target)
        case "docker-secrets":
            provisioner = applier._provisioner(target)
            made = 0
            for service in target.services:
                if not (service.uses or service.secrets):
                    continue
                values = {k: v.reveal() if isinstance(v, Secret) else v
                          for k, v in provisioner.variables(service).items()}
                try:
                    text = env_secret_text(values)
                except ValueError as exc:
                    raise UsageError(f"{exc}; service {service.name} cannot be given it",
                                     "name secrets with letters, digits and _") from None
                name = env_secret_name(target, service.name, text)
                made += runtime.create_secret(name, target.labels, Secret(text))
                rollout.env_secrets[service.name] = name
            return "ok" if made else "skip"
        case "images":
            rollout.images, rollout.local = _images(applier, runtime, target)
        case "render":
            found = _stack(applier, target, rollout)
            rollout.keep = {str(v["name"]) for kind in ("secrets", "configs")
                            for v in dict(found.get(kind) or {}).values()}
            from envplane.apply import write_atomic

            write_atomic(stack_file(root, target), to_yaml(found))
        case "deploy":
            registry = applier.project.spec.registry
            if registry is None:
                runtime.deploy(stack_file(root, target), stack_name(target), registry=False)
            else:
                from envplane.hosts.transfer import registry_credentials

                username, password = registry_credentials(applier.project, target)
                with images.docker_config(registry.address, username, password) as config:
                    SwarmRuntime(target.engine, config).deploy(stack_file(root, target), stack_name(target),
                                                               registry=True)
        case "converge":
            runtime.wait(target.app, target.id, applier.health_timeout)
        case "prune":
            return "ok" if runtime.prune(target.app, target.id, rollout.keep) else "skip"
        case "route":
            nodes = [n.address for n in runtime.nodes() if n.address]
            proxy = applier.proxy_of(target)
            rollout.listen = proxy.set_routes(target.app, target.id, node_routes(target, nodes)).listen
        case _:
            raise AssertionError(f"plan step {step.kind!r} has no executor on swarm")
    return "ok"


def node_routes(target: Target, addresses: list[str]) -> list[Route]:
    """The instance's routes, each to its service's host port on every node. Pure."""
    out = []
    for route in routes_for(target):
        port = route.upstream.rpartition(":")[2]
        dials = [f"{address}:{port}" for address in sorted(set(addresses))] or [route.upstream]
        out.append(replace(route, upstream=dials[0], spares=tuple(dials[1:])))
    return out


def pinned_ref(ref: str, image_id: str) -> str:
    """A tag naming exactly one image, so a new image is a new service spec (a rolling
    update) and every node runs that image, whatever its `latest` says."""
    name = ref.split("@", 1)[0]
    repository = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    return f"{repository}:envplane-{image_id.removeprefix('sha256:')[:20]}"


def _images(applier: Applier, runtime: SwarmRuntime, target: Target
            ) -> tuple[dict[str, str], dict[str, str]]:
    """Each service's image on every node: built here when missing, then sent to each ready
    node by its missing layers (or pushed once to the spec's registry); the stack pins it."""
    project = applier.project
    built = [s.name for s in target.services if "build" in target.compose.services.get(s.name, {})]
    if any(images.image_id(LOCAL, image_of(target, name)) is None for name in built):
        file = compose_file(project.root, target)
        from envplane.apply import write_atomic

        write_atomic(file, to_yaml(render(target, project.compose[0].file.parent)))
        ComposeRuntime().build(target.project, file)
    registry = project.spec.registry
    credentials = None
    if registry is not None:
        from envplane.hosts.transfer import registry_credentials

        credentials = registry_credentials(project, target)
    nodes: list[Engine] = [engine for _, engine in runtime.node_engines()]
    out: dict[str, str] = {}
    local: dict[str, str] = {}
    for service in target.services:
        ref = image_of(target, service.name)
        found = images.image_id(LOCAL, ref)
        if found is None:
            continue  # not here: the nodes pull it by its name, as Compose would
        pinned = pinned_ref(ref, found)
        images.tag(LOCAL, ref, pinned)
        local[service.name] = pinned
        if registry is not None and credentials is not None:
            sent = images.through_registry(pinned, found, LOCAL, target.engine, registry.address,
                                           *credentials)
            out[service.name] = sent.digest or pinned
            continue
        for engine in nodes:
            images.send(pinned, found, LOCAL, engine)
        out[service.name] = pinned
    return out, local


def _stack(applier: Applier, target: Target, rollout: Rollout) -> dict[str, Any]:
    project = applier.project
    base = project.compose[0].file.parent
    compose = render(target, base)
    contents = {}
    for kind in ("secrets", "configs"):
        for key, value in (compose.get(kind) or {}).items():
            if isinstance(value, dict) and value.get("file"):
                path = Path(str(value["file"]).replace("$$", "$")).expanduser()
                try:
                    contents[f"{kind}.{key}"] = hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError as exc:
                    raise UsageError(f"cannot read {kind}.{key}'s file {path}: {exc.strerror}",
                                     "the file is sent to the swarm as a Docker " + kind[:-1]) from None
    commands = {name: _command(rollout.local.get(name) or image_of(target, name))
                for name in rollout.env_secrets
                if not {"entrypoint", "command"} <= set(target.compose.services.get(name, {}))}
    inputs = StackInputs(images=rollout.images, env_secrets=rollout.env_secrets, commands=commands,
                         contents=contents)
    try:
        return stack(project.spec, target, compose, inputs)
    except ValueError as exc:
        raise UsageError(f"{exc}", "give the service a `command:` in the Compose file") from None


def _command(ref: str) -> Command:
    """The image's own ENTRYPOINT and CMD, which the credentials wrapper runs."""
    found = run(["docker", "image", "inspect", "--format", "{{json .Config}}", ref], check=False,
                what=f"inspect image {ref}")
    if found.returncode != 0:
        raise BackendError(f"image {ref} is not on this machine: its command is unknown",
                           "build or pull it here, or give the service `entrypoint:` and `command:`")
    config = json.loads(found.stdout or "{}") or {}
    return Command(tuple(config.get("Entrypoint") or ()), tuple(config.get("Cmd") or ()))


def down(applier: Applier, target: Target, purge: bool) -> Removal:
    """Remove the instance's stack, its secrets and configs (and with purge its volumes on
    every node, its resources, secrets and data folder), by its labels; what a purge could
    not drop (its server missing or down) is kept, with its secrets."""
    from envplane.apply import Removal, remove_data_path

    runtime = SwarmRuntime(target.engine)
    runtime.check()
    applier.proxy_of(target).remove(target.app, target.id)
    left = runtime.down(target.app, target.id, purge, stack_name(target))
    folder = instance_dir(applier.project.root, target)
    if folder.exists():
        shutil.rmtree(folder)
    kept: list[str] = []
    if purge:
        if target.database or target.bucket or target.redis_prefix:
            kept = applier._provisioner(target).purge()
        remove_data_path(target, applier.project.root)
    return Removal(left, tuple(kept))
