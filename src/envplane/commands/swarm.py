"""Docker CLI command lines of the swarm runtime (a stack per instance): data, never run here.

Every command goes to the Swarm manager's engine (the env's `hosts:` entry), except the
node ones (`containers`, `volumes` of commands/docker.py) that runs.py sends to each node.
"""

from __future__ import annotations

from collections.abc import Mapping

from envplane.commands.docker import instance_filters
from envplane.target import LABEL_APP


def swarm_info() -> list[str]:
    """Whether the engine is in a swarm and may manage it (`ControlAvailable`)."""
    return ["docker", "info", "--format", "{{json .Swarm}}"]


def nodes() -> list[str]:
    return ["docker", "node", "ls", "--quiet"]


def inspect_nodes(ids: list[str]) -> list[str]:
    return ["docker", "node", "inspect", *ids]


def stack_deploy(file: str, stack: str, registry: bool) -> list[str]:
    """Deploy (or update) the stack; services gone from the file are removed (`--prune`).

    With a registry the images are digests the manager resolves and the nodes pull with the
    credentials sent along; without one every node already holds each image (sent over
    SSH), and asking a registry for a digest would only fail and warn.
    """
    return ["docker", "stack", "deploy", "--compose-file", file, "--prune",
            "--resolve-image", "always" if registry else "never",
            *(["--with-registry-auth"] if registry else []), stack]


def stack_rm(stack: str) -> list[str]:
    return ["docker", "stack", "rm", stack]


def services(app: str, instance: str) -> list[str]:
    return ["docker", "service", "ls", "--quiet", *instance_filters(app, instance)]


def all_services(app: str | None = None) -> list[str]:
    """Every service envplane labelled (of one app, or of any)."""
    label = f"label={LABEL_APP}={app}" if app else f"label={LABEL_APP}"
    return ["docker", "service", "ls", "--quiet", "--filter", label]


def every_service() -> list[str]:
    """Every service of the swarm, envplane's or not (host ports are the swarm's to share)."""
    return ["docker", "service", "ls", "--quiet"]


def inspect_services(ids: list[str]) -> list[str]:
    return ["docker", "service", "inspect", *ids]


def tasks(service_ids: list[str]) -> list[str]:
    """The task IDs of the services, history included (Swarm keeps a few per slot)."""
    return ["docker", "service", "ps", "--quiet", "--no-trunc", *service_ids]


def inspect_tasks(ids: list[str]) -> list[str]:
    return ["docker", "inspect", "--type", "task", *ids]


def _labels(labels: Mapping[str, str]) -> list[str]:
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]


def secret_create(name: str, labels: Mapping[str, str]) -> list[str]:
    """A Docker secret from stdin: its value is never an argument or a file."""
    return ["docker", "secret", "create", *_labels(labels), name, "-"]


def secrets(app: str, instance: str) -> list[str]:
    return ["docker", "secret", "ls", *instance_filters(app, instance), "--format", "{{.Name}}"]


def inspect_secrets(names: list[str]) -> list[str]:
    """Metadata only: Docker never gives a secret's value back."""
    return ["docker", "secret", "inspect", *names]


def remove_secrets(names: list[str]) -> list[str]:
    return ["docker", "secret", "rm", *names]


def configs(app: str, instance: str) -> list[str]:
    return ["docker", "config", "ls", *instance_filters(app, instance), "--format", "{{.Name}}"]


def remove_configs(names: list[str]) -> list[str]:
    return ["docker", "config", "rm", *names]


def service_logs(service: str, follow: bool, tail: int = 200) -> list[str]:
    return ["docker", "service", "logs", "--tail", str(tail), "--timestamps",
            *(["--follow"] if follow else []), service]
