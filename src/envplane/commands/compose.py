"""Docker Compose v2 command lines for one instance (project name + rendered file)."""

from __future__ import annotations


def compose(project: str, file: str, *args: str) -> list[str]:
    return ["docker", "compose", "--project-name", project, "--file", file, *args]


def build(project: str, file: str) -> list[str]:
    return compose(project, file, "build")


def up(project: str, file: str) -> list[str]:
    return compose(project, file, "up", "--detach", "--remove-orphans")
