"""Docker CLI command lines used to observe an instance: data, never run here."""

from __future__ import annotations

from envplane.target import LABEL_APP, LABEL_INSTANCE


def server_version() -> list[str]:
    """Answers only when the engine does. Unlike `docker info`, it asks no CLI plugin for its
    metadata: ~0.02 s instead of 0.2-0.5 s on every command that checks the engine (#11)."""
    return ["docker", "version", "--format", "{{json .Server.Version}}"]


def bridge_config() -> list[str]:
    """The default bridge's address plan: its gateway is what containers call host-gateway."""
    return ["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"]


def compose_version() -> list[str]:
    return ["docker", "compose", "version", "--short"]


def instance_filters(app: str, instance: str) -> list[str]:
    return ["--filter", f"label={LABEL_APP}={app}", "--filter", f"label={LABEL_INSTANCE}={instance}"]


def containers(app: str, instance: str) -> list[str]:
    return ["docker", "ps", "--all", "--no-trunc", *instance_filters(app, instance),
            "--format", "{{json .}}"]


# One JSON object a line: what a health wait polls. `docker ps` shows health only in its
# status text (`Up 3 seconds (healthy)`); the service comes from its own label, not a name.
STATE_FORMAT = ('{"id":{{json .ID}},"name":{{json .Names}},"state":{{json .State}},'
                '"status":{{json .Status}},"service":{{json (.Label "com.docker.compose.service")}}}')


def states(app: str, instance: str) -> list[str]:
    """State and health of the instance's containers in one listing (no `docker inspect`)."""
    return ["docker", "ps", "--all", "--no-trunc", *instance_filters(app, instance),
            "--format", STATE_FORMAT]


def all_envplane_containers() -> list[str]:
    return ["docker", "ps", "--all", "--no-trunc", "--filter", f"label={LABEL_APP}",
            "--format", "{{json .}}"]


def app_containers(app: str) -> list[str]:
    """The app's containers, every instance's, in one listing (the engine filters by label)."""
    return ["docker", "ps", "--all", "--no-trunc", "--filter", f"label={LABEL_APP}={app}",
            "--format", "{{json .}}"]


def inspect(ids: list[str], kind: str = "") -> list[str]:
    """`docker inspect` of containers (or of networks, volumes: `kind`)."""
    return ["docker", *([kind] if kind else []), "inspect", *ids]


def networks(app: str, instance: str) -> list[str]:
    return ["docker", "network", "ls", *instance_filters(app, instance), "--format", "{{.Name}}"]


def volumes(app: str, instance: str) -> list[str]:
    return ["docker", "volume", "ls", *instance_filters(app, instance), "--format", "{{.Name}}"]


def remove_containers(ids: list[str]) -> list[str]:
    return ["docker", "rm", "--force", "--volumes", *ids]


def remove_container_only(container: str) -> list[str]:
    """Remove one container and none of its volumes (a half-replaced one shares the old
    container's anonymous volumes)."""
    return ["docker", "rm", "--force", container]


def rename(container: str, name: str) -> list[str]:
    return ["docker", "rename", container, name]


def stop_containers(ids: list[str], seconds: int = 30) -> list[str]:
    """Stop gracefully (SIGTERM, then SIGKILL after `seconds`): a database flushes first."""
    return ["docker", "stop", "--time", str(seconds), *ids]


def remove_networks(names: list[str]) -> list[str]:
    return ["docker", "network", "rm", *names]


def remove_volumes(names: list[str]) -> list[str]:
    return ["docker", "volume", "rm", "--force", *names]


def logs(container: str, follow: bool, tail: int = 200) -> list[str]:
    return ["docker", "logs", *(["--follow"] if follow else []), "--tail", str(tail), container]


def last_lines(container: str, lines: int) -> list[str]:
    return ["docker", "logs", "--tail", str(lines), container]


def publishing(port: int, protocol: str) -> list[str]:
    """Containers (any app, any state) that publish host port `port`."""
    return ["docker", "ps", "--all", "--filter", f"publish={port}/{protocol}", "--format",
            '{{.Names}}\t{{.Label "envplane.app"}}\t{{.Label "envplane.instance"}}']


def image_id(ref: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Id}}\t{{json .RepoDigests}}", ref]


def tag(source: str, ref: str) -> list[str]:
    return ["docker", "tag", source, ref]


def pull(ref: str) -> list[str]:
    return ["docker", "pull", "--quiet", ref]


def copy_out(container: str, path: str, dest: str) -> list[str]:
    """Copy one path out of a container, started or not (pre-flight: is the command there?)."""
    return ["docker", "cp", f"{container}:{path}", dest]
