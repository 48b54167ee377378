"""Docker Compose v2 command lines for one instance (project name + rendered file)."""

from __future__ import annotations


def compose(project: str, file: str, *args: str) -> list[str]:
    return ["docker", "compose", "--project-name", project, "--file", file, *args]


def build(project: str, file: str) -> list[str]:
    return compose(project, file, "build")


def up(project: str, file: str) -> list[str]:
    return compose(project, file, "up", "--detach", "--remove-orphans")


def run_once(project: str, file: str, service: str, command: str) -> list[str]:
    """A one-off container of the service running `command` (a release hook)."""
    return compose(project, file, "run", "--rm", "--no-TTY", service, "sh", "-c", command)


def down_project(project: str) -> list[str]:
    """Stop and remove one Compose project's containers and networks; volumes stay."""
    return ["docker", "compose", "--project-name", project, "down", "--remove-orphans"]
