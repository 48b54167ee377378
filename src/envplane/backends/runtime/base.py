"""The interface of a detached runtime: what `up`, `down`, `status` and `verify` need.

`compose` implements it now; `swarm`, `kubernetes` and `dokploy` are to follow it.
The process runtime (env `local`) runs in the foreground instead and does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from envplane.backends.runtime.facts import ContainerFact


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

    def build(self, project: str, file: Path) -> None: ...

    def up(self, project: str, file: Path) -> None: ...

    def run_once(self, project: str, file: Path, service: str, command: str) -> None:
        """Run a command in a one-off container of the service; raise when it fails."""

    def down_project(self, project: str) -> None:
        """Stop one Compose project of an instance (a blue-green colour)."""

    def port_users(self, port: int, protocol: str) -> list[tuple[str, str, str]]:
        """(container, app, instance) of every container publishing the host port."""

    def containers(self, app: str, instance: str) -> list[ContainerFact]:
        """The instance's containers, found by envplane's labels."""

    def down(self, app: str, instance: str, purge: bool) -> Leftovers:
        """Remove the instance's resources (by label) and report what is left."""
