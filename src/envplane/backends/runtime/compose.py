"""The compose runtime: Docker Compose v2 with the rendered file and the instance's project.

Observation goes by envplane's labels, never by name patterns, so an operation on one
instance cannot reach a container, network or volume of another. Every command runs
against the runtime's engine (the instance's host, spec `hosts:`): its environment is
given to each process through run.py.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, ClassVar

from envplane.backends.runtime.base import Leftovers
from envplane.backends.runtime.facts import (
    ContainerFact,
    Launch,
    half_replaced,
    names,
    parse_inspect,
    parse_launches,
    parse_ps_lines,
    parse_states,
)
from envplane.commands import compose as compose_cmd
from envplane.commands import docker as docker_cmd
from envplane.errors import BackendError
from envplane.hosts.connect import docker_env
from envplane.hosts.engine import LOCAL, Engine
from envplane.run import Result, run

log = logging.getLogger("envplane.runtime.compose")


def inspect_existing(ids: list[str], env: dict[str, str] | None = None, kind: str = "") -> str:
    """`docker inspect` JSON of those of `ids` that still exist (`env`: the engine's, docker_env):
    containers, or networks or volumes (`kind`).

    A container listed a moment ago may be gone by now (a one-off hook container, a
    colour being stopped), and so may another instance's network or volume (its `down`):
    that is not an error, its absence is the answer.
    """
    result = run(docker_cmd.inspect(ids, kind), check=False, env=env, what=f"docker {kind} inspect")
    if result.returncode != 0 and not result.stdout.strip().startswith("["):
        # an engine that stopped answering fails here
        run(docker_cmd.server_version(), env=env, what="docker version")
        return "[]"
    return result.stdout


class ComposeRuntime:
    name = "compose"
    # engine key -> its Compose command, found once a process: `preview gc` of 50 previews
    # makes a runtime per preview, and asking again cost a process each (#11 scale).
    _compose_of: ClassVar[dict[str, list[str]]] = {}

    def __init__(self, engine: Engine = LOCAL) -> None:
        self._compose: list[str] | None = self._compose_of.get(engine.key)
        self.engine = engine
        self.env = docker_env(engine)

    def check(self) -> None:
        """Raise a clear error when no engine answers. Which Compose it has is asked at the
        first Compose command (`compose_prefix`), once a process: `down` runs none (#11.2)."""
        try:
            self._run(docker_cmd.server_version(), what="docker version", timeout=30)
        except BackendError as exc:
            if self.engine.local:
                raise BackendError(
                    "no Docker engine answers",
                    "start it (dockerd, or `bash scripts/services/docker.sh`) or set DOCKER_HOST",
                ) from None
            raise BackendError(
                f"the Docker engine of {self.engine.describe()} does not answer: {exc.message[-300:]}",
                "check that the host runs Docker, that `ssh` reaches it with the spec's identity "
                "and known_hosts (its host key must be known), or fix hosts: in envplane.yaml",
            ) from None

    def compose_prefix(self) -> list[str]:
        """`docker compose` (v2), else `docker-compose` (v1) with a warning."""
        if self._compose is not None:
            return self._compose
        v2 = self._run(docker_cmd.compose_version(), check=False, what="docker compose version")
        if v2.returncode == 0:
            self._compose = self._compose_of[self.engine.key] = ["docker", "compose"]
            return self._compose
        v1 = self._run(["docker-compose", "version", "--short"], check=False, what="docker-compose")
        if v1.returncode == 0:
            log.warning("Docker Compose v2 is missing; falling back to docker-compose v1")
            self._compose = self._compose_of[self.engine.key] = ["docker-compose"]
            return self._compose
        raise BackendError(
            "Docker Compose is not installed", "install the Compose v2 plugin (`docker compose`)"
        )

    def _run(self, args: list[str], **options: Any) -> Result:
        """run.py's run, on this runtime's engine."""
        return run(args, env=self.env, **options)

    def _cmd(self, args: list[str]) -> list[str]:
        return [*self.compose_prefix(), *args[2:]] if args[:2] == ["docker", "compose"] else args

    def build(self, project: str, file: Path, services: tuple[str, ...] = ()) -> None:
        self._run(self._cmd(compose_cmd.build(project, str(file), services)),
                  what=f"build images of {project}", timeout=1800)

    def image_id(self, ref: str) -> str | None:
        """The id of the image the engine holds under `ref`; None when it holds none."""
        done = self._run(docker_cmd.image_id(ref), check=False, what="docker image inspect")
        return done.stdout.split("\t", 1)[0].strip() or None if done.returncode == 0 else None

    def pull(self, ref: str) -> None:
        self._run(docker_cmd.pull(ref), what=f"pull {ref}", timeout=900)

    def create(self, project: str, file: Path) -> None:
        """Create a project's containers without starting them (they run nothing)."""
        self._run(self._cmd(compose_cmd.create(project, str(file))),
                  what=f"create the containers of {project}", timeout=300)

    def launches(self, project: str) -> list[Launch]:
        ids = parse_ps_lines(self._run(compose_cmd.containers(project), what="docker ps").stdout)
        return parse_launches(inspect_existing(ids, self.env)) if ids else []

    def has_path(self, container: str, path: str, scratch: Path) -> bool:
        """Whether `path` exists in the container's file system (a created one, too)."""
        dest = scratch / "probe"
        done = self._run(docker_cmd.copy_out(container, path, str(dest)), check=False, what="docker cp")
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        else:
            dest.unlink(missing_ok=True)
        return done.returncode == 0

    def remove_project(self, project: str) -> None:
        """Remove one project's containers and networks by Compose's label: faster than
        `compose down`, for the pre-flight's trial, whose containers never started."""
        ids = parse_ps_lines(self._run(compose_cmd.containers(project), what="docker ps").stdout)
        if ids:
            self._run(docker_cmd.remove_containers(ids), what="remove containers", timeout=120)
        nets = names(self._run(compose_cmd.networks(project), what="list networks").stdout)
        if nets:
            self._run(docker_cmd.remove_networks(nets), what="remove networks")

    def up(self, project: str, file: Path, remove_orphans: bool = True) -> None:
        self._run(self._cmd(compose_cmd.up(project, str(file), remove_orphans)), what=f"start {project}",
            timeout=900)

    def run_once(self, project: str, file: Path, service: str, command: str) -> None:
        self._run(self._cmd(compose_cmd.run_once(project, str(file), service, command)),
            what=f"run `{command}` in {service}", timeout=900)

    def exec_in(self, project: str, file: Path, service: str, command: str) -> None:
        self._run(self._cmd(compose_cmd.exec_in(project, str(file), service, command)),
            what=f"run `{command}` in the running {service}", timeout=900)

    def stop(self, ids: list[str]) -> None:
        self._run(docker_cmd.stop_containers(ids), what="stop containers", timeout=120)

    def down_project(self, project: str) -> None:
        self._run(self._cmd(compose_cmd.down_project(project)), what=f"stop {project}", timeout=300)

    def port_users(self, port: int, protocol: str) -> list[tuple[str, str, str]]:
        """(container, app, instance) of every container publishing the host port."""
        listed = self._run(docker_cmd.publishing(port, protocol), what="docker ps").stdout
        users = []
        for line in listed.splitlines():
            if line.strip():
                name, app, instance = [*line.split("\t"), "", ""][:3]
                users.append((name, app, instance))
        return users

    def containers(self, app: str, instance: str) -> list[ContainerFact]:
        ids = parse_ps_lines(self._run(docker_cmd.containers(app, instance), what="docker ps").stdout)
        if not ids:
            return []
        return parse_inspect(inspect_existing(ids, self.env))

    def health_states(self, app: str, instance: str) -> list[ContainerFact]:
        """State and health of the instance's containers in one engine call: what a health
        wait polls (containers() needs two, `docker ps` and `docker inspect`)."""
        return parse_states(self._run(docker_cmd.states(app, instance), what="docker ps").stdout)

    def put_right(self, app: str, instance: str) -> list[str]:
        """Undo what an interrupted Compose recreate left of the instance (facts.half_replaced):
        a container under its temporary name gets its name back when that is free (it is the
        new one Compose was about to rename), else it goes (the proper one still stands).
        Returns what was done, one line each."""
        facts = self.health_states(app, instance)  # names are all it needs: one engine call
        taken = {f.name for f in facts}
        done = []
        for fact in facts:
            meant = half_replaced(fact.name)
            if meant is None:
                continue
            if meant in taken:
                self._run(docker_cmd.remove_container_only(fact.name), what="docker rm")
                done.append(f"removed {fact.name}, left by an interrupted replace of {meant}")
            else:
                self._run(docker_cmd.rename(fact.name, meant), what="docker rename")
                taken.add(meant)
                done.append(f"renamed {fact.name} back to {meant}")
        for line in done:
            log.warning("%s", line)
        return done

    def last_lines(self, container: str, lines: int = 20) -> str:
        """A container's last log lines (both streams), unmasked: mask before showing them."""
        done = self._run(docker_cmd.last_lines(container, lines), check=False, what="docker logs")
        return (done.stdout + done.stderr).strip()

    def leftovers(self, app: str, instance: str) -> Leftovers:
        return Leftovers(
            containers=tuple(c.name for c in self.containers(app, instance)),
            networks=tuple(names(self._run(docker_cmd.networks(app, instance), what="list networks").stdout)),
            volumes=tuple(names(self._run(docker_cmd.volumes(app, instance), what="list volumes").stdout)),
        )

    def down(self, app: str, instance: str, purge: bool) -> Leftovers:
        """Remove the instance's containers and networks (and volumes with purge), by label."""
        ids = [c.id for c in self.containers(app, instance)]
        if ids:
            self._run(docker_cmd.remove_containers(ids), what="remove containers", timeout=120)
        nets = names(self._run(docker_cmd.networks(app, instance), what="list networks").stdout)
        if nets:
            self._run(docker_cmd.remove_networks(nets), what="remove networks")
        if purge:
            vols = names(self._run(docker_cmd.volumes(app, instance), what="list volumes").stdout)
            if vols:
                self._run(docker_cmd.remove_volumes(vols), what="remove volumes")
        left = self.leftovers(app, instance)
        # Without --purge the volumes stay on purpose; they are not left behind.
        return left if purge else Leftovers(left.containers, left.networks, ())
