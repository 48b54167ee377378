"""Docker CLI command lines used to observe an instance: data, never run here."""

from __future__ import annotations

from envplane.target import LABEL_APP, LABEL_INSTANCE


def info() -> list[str]:
    return ["docker", "info", "--format", "{{json .ServerVersion}}"]


def compose_version() -> list[str]:
    return ["docker", "compose", "version", "--short"]


def instance_filters(app: str, instance: str) -> list[str]:
    return ["--filter", f"label={LABEL_APP}={app}", "--filter", f"label={LABEL_INSTANCE}={instance}"]


def containers(app: str, instance: str) -> list[str]:
    return ["docker", "ps", "--all", "--no-trunc", *instance_filters(app, instance),
            "--format", "{{json .}}"]


def all_envplane_containers() -> list[str]:
    return ["docker", "ps", "--all", "--no-trunc", "--filter", f"label={LABEL_APP}",
            "--format", "{{json .}}"]


def inspect(ids: list[str]) -> list[str]:
    return ["docker", "inspect", *ids]


def networks(app: str, instance: str) -> list[str]:
    return ["docker", "network", "ls", *instance_filters(app, instance), "--format", "{{.Name}}"]


def volumes(app: str, instance: str) -> list[str]:
    return ["docker", "volume", "ls", *instance_filters(app, instance), "--format", "{{.Name}}"]


def remove_containers(ids: list[str]) -> list[str]:
    return ["docker", "rm", "--force", "--volumes", *ids]


def remove_networks(names: list[str]) -> list[str]:
    return ["docker", "network", "rm", *names]


def remove_volumes(names: list[str]) -> list[str]:
    return ["docker", "volume", "rm", "--force", *names]


def logs(container: str, follow: bool) -> list[str]:
    return ["docker", "logs", *(["--follow"] if follow else []), "--tail", "200", container]


def publishing(port: int, protocol: str) -> list[str]:
    """Containers (any app, any state) that publish host port `port`."""
    return ["docker", "ps", "--all", "--filter", f"publish={port}/{protocol}", "--format",
            '{{.Names}}\t{{.Label "envplane.app"}}\t{{.Label "envplane.instance"}}']


def image_id(ref: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Id}}\t{{json .RepoDigests}}", ref]


def tag(source: str, ref: str) -> list[str]:
    return ["docker", "tag", source, ref]
