"""Docker Compose v2 command lines for one instance (project name + rendered file)."""

from __future__ import annotations


def compose(project: str, file: str, *args: str) -> list[str]:
    return ["docker", "compose", "--project-name", project, "--file", file, *args]


def build(project: str, file: str, services: tuple[str, ...] = ()) -> list[str]:
    return compose(project, file, "build", *services)


def create(project: str, file: str) -> list[str]:
    """Create the containers and stop there: nothing starts, no image is pulled or built."""
    return compose(project, file, "create", "--pull", "never", "--no-build")


def containers(project: str) -> list[str]:
    """Every container of one Compose project, started or not, by Compose's own label."""
    return ["docker", "ps", "--all", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}",
            "--format", "{{json .}}"]


def up(project: str, file: str, remove_orphans: bool = True) -> list[str]:
    return compose(project, file, "up", "--detach", *(["--remove-orphans"] if remove_orphans else []))


def run_once(project: str, file: str, service: str, command: str) -> list[str]:
    """A one-off container of the service running `command` (a release hook)."""
    return compose(project, file, "run", "--rm", "--no-TTY", service, "sh", "-c", command)


def exec_in(project: str, file: str, service: str, command: str) -> list[str]:
    """`command` in the running container of the service (a hook of a stateful service)."""
    return compose(project, file, "exec", "--no-TTY", service, "sh", "-c", command)


def down_project(project: str) -> list[str]:
    """Stop and remove one Compose project's containers and networks; volumes stay."""
    return ["docker", "compose", "--project-name", project, "down", "--remove-orphans"]


def networks(project: str) -> list[str]:
    return ["docker", "network", "ls", "--filter", f"label=com.docker.compose.project={project}",
            "--format", "{{.Name}}"]
