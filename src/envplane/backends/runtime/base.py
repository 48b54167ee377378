"""The interface of a detached runtime: what `up`, `down`, `status` and `verify` need.

`compose` implements it. `swarm` and `kubernetes` deploy a whole instance at once (a stack,
manifests) and have runtimes of their own (swarm.py, kubernetes.py), driven by
swarm/apply.py and kubernetes/apply.py. The process runtime (env `local`) runs in the
foreground instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from envplane.backends.runtime.facts import ContainerFact, Launch


@dataclass(frozen=True)
class Leftovers:
    """What an instance still has on the engine after `down`."""

    containers: tuple[str, ...]
    networks: tuple[str, ...]
    volumes: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.containers or self.networks or self.volumes)


class Runtime(Protocol):
    name: str

    def check(self) -> None:
        """Raise BackendError with a hint when the engine cannot be reached."""

    def build(self, project: str, file: Path, services: tuple[str, ...] = ()) -> None: ...

    def image_id(self, ref: str) -> str | None:
        """The id of the image the engine holds under `ref`; None when it holds none."""

    def pull(self, ref: str) -> None: ...

    def create(self, project: str, file: Path) -> None:
        """Create a project's containers without starting them (the pre-flight's trial)."""

    def launches(self, project: str) -> list[Launch]:
        """What each container of a project would run."""

    def has_path(self, container: str, path: str, scratch: Path) -> bool:
        """Whether a path exists in a container's file system (copied into `scratch` to know)."""

    def remove_project(self, project: str) -> None:
        """Remove one project's containers and networks (the pre-flight's trial)."""

    def up(self, project: str, file: Path, remove_orphans: bool = True) -> None: ...

    def run_once(self, project: str, file: Path, service: str, command: str) -> None:
        """Run a command in a one-off container of the service; raise when it fails."""

    def exec_in(self, project: str, file: Path, service: str, command: str) -> None:
        """Run a command in the service's running container; raise when it fails."""

    def stop(self, ids: list[str]) -> None:
        """Stop containers gracefully, leaving them for their project's `down`."""

    def down_project(self, project: str) -> None:
        """Stop one Compose project of an instance (a blue-green colour)."""

    def port_users(self, port: int, protocol: str) -> list[tuple[str, str, str]]:
        """(container, app, instance) of every container publishing the host port."""

    def containers(self, app: str, instance: str) -> list[ContainerFact]:
        """The instance's containers, found by envplane's labels."""

    def leftovers(self, app: str, instance: str) -> Leftovers:
        """The instance's containers, networks and volumes on the engine, by label."""

    def put_right(self, app: str, instance: str) -> list[str]:
        """Undo what an interrupted replace left of the instance's containers; what was done."""

    def last_lines(self, container: str, lines: int = 20) -> str:
        """A container's last log lines, unmasked (for errors, which mask them)."""

    def health_states(self, app: str, instance: str) -> list[ContainerFact]:
        """State and health of the instance's containers (labels: the service only)."""

    def down(self, app: str, instance: str, purge: bool) -> Leftovers:
        """Remove the instance's resources (by label) and report what is left."""
