"""The compose runtime: Docker Compose v2 with the rendered file and the instance's project.

Observation goes by envplane's labels, never by name patterns, so an operation on one
instance cannot reach a container, network or volume of another.
"""

from __future__ import annotations

import logging
from pathlib import Path

from envplane.backends.runtime.base import Leftovers
from envplane.backends.runtime.facts import ContainerFact, names, parse_inspect, parse_ps_lines
from envplane.commands import compose as compose_cmd
from envplane.commands import docker as docker_cmd
from envplane.errors import BackendError
from envplane.run import run

log = logging.getLogger("envplane.runtime.compose")


def inspect_existing(ids: list[str]) -> str:
    """`docker inspect` JSON of those of `ids` that still exist.

    A container listed a moment ago may be gone by now (a one-off hook container, a
    colour being stopped): that is not an error, its absence is the answer.
    """
    result = run(docker_cmd.inspect(ids), check=False, what="docker inspect")
    if result.returncode != 0 and not result.stdout.strip().startswith("["):
        run(docker_cmd.info(), what="docker info")  # an engine that stopped answering fails here
        return "[]"
    return result.stdout


class ComposeRuntime:
    name = "compose"

    def __init__(self) -> None:
        self._compose: list[str] | None = None

    def check(self) -> None:
        """Raise a clear error when no engine answers or Compose is missing."""
        try:
            run(docker_cmd.info(), what="docker info", timeout=30)
        except BackendError:
            raise BackendError(
                "no Docker engine answers",
                "start it (dockerd, or `bash scripts/services/docker.sh`) or set DOCKER_HOST",
            ) from None
        self.compose_prefix()

    def compose_prefix(self) -> list[str]:
        """`docker compose` (v2), else `docker-compose` (v1) with a warning."""
        if self._compose is not None:
            return self._compose
        v2 = run(docker_cmd.compose_version(), check=False, what="docker compose version")
        if v2.returncode == 0:
            self._compose = ["docker", "compose"]
            return self._compose
        v1 = run(["docker-compose", "version", "--short"], check=False, what="docker-compose")
        if v1.returncode == 0:
            log.warning("Docker Compose v2 is missing; falling back to docker-compose v1")
            self._compose = ["docker-compose"]
            return self._compose
        raise BackendError(
            "Docker Compose is not installed", "install the Compose v2 plugin (`docker compose`)"
        )

    def _cmd(self, args: list[str]) -> list[str]:
        return [*self.compose_prefix(), *args[2:]] if args[:2] == ["docker", "compose"] else args

    def build(self, project: str, file: Path) -> None:
        run(self._cmd(compose_cmd.build(project, str(file))), what=f"build images of {project}")

    def up(self, project: str, file: Path) -> None:
        run(self._cmd(compose_cmd.up(project, str(file))), what=f"start {project}", timeout=900)

    def run_once(self, project: str, file: Path, service: str, command: str) -> None:
        run(self._cmd(compose_cmd.run_once(project, str(file), service, command)),
            what=f"run `{command}` in {service}", timeout=900)

    def down_project(self, project: str) -> None:
        run(self._cmd(compose_cmd.down_project(project)), what=f"stop {project}", timeout=300)

    def port_users(self, port: int, protocol: str) -> list[tuple[str, str, str]]:
        """(container, app, instance) of every container publishing the host port."""
        listed = run(docker_cmd.publishing(port, protocol), what="docker ps").stdout
        users = []
        for line in listed.splitlines():
            if line.strip():
                name, app, instance = [*line.split("\t"), "", ""][:3]
                users.append((name, app, instance))
        return users

    def containers(self, app: str, instance: str) -> list[ContainerFact]:
        ids = parse_ps_lines(run(docker_cmd.containers(app, instance), what="docker ps").stdout)
        if not ids:
            return []
        return parse_inspect(inspect_existing(ids))

    def leftovers(self, app: str, instance: str) -> Leftovers:
        return Leftovers(
            containers=tuple(c.name for c in self.containers(app, instance)),
            networks=tuple(names(run(docker_cmd.networks(app, instance), what="list networks").stdout)),
            volumes=tuple(names(run(docker_cmd.volumes(app, instance), what="list volumes").stdout)),
        )

    def down(self, app: str, instance: str, purge: bool) -> Leftovers:
        """Remove the instance's containers and networks (and volumes with purge), by label."""
        ids = [c.id for c in self.containers(app, instance)]
        if ids:
            run(docker_cmd.remove_containers(ids), what="remove containers", timeout=120)
        nets = names(run(docker_cmd.networks(app, instance), what="list networks").stdout)
        if nets:
            run(docker_cmd.remove_networks(nets), what="remove networks")
        if purge:
            vols = names(run(docker_cmd.volumes(app, instance), what="list volumes").stdout)
            if vols:
                run(docker_cmd.remove_volumes(vols), what="remove volumes")
        left = self.leftovers(app, instance)
        # Without --purge the volumes stay on purpose; they are not left behind.
        return left if purge else Leftovers(left.containers, left.networks, ())
