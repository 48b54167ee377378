"""Docker Compose v2 command lines for one instance (project name + rendered file)."""

from __future__ import annotations


def compose(project: str, file: str, *args: str) -> list[str]:
    return ["docker", "compose", "--project-name", project, "--file", file, *args]


def config_quiet(project: str, file: str) -> list[str]:
    return compose(project, file, "config", "--quiet")


def build(project: str, file: str) -> list[str]:
    return compose(project, file, "build")


def up(project: str, file: str) -> list[str]:
    return compose(project, file, "up", "--detach", "--remove-orphans")


def down(project: str, file: str, purge: bool) -> list[str]:
    extra = ["--volumes"] if purge else []
    return compose(project, file, "down", "--remove-orphans", *extra)
