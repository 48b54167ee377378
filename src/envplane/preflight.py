"""Pre-flight: what `up` proves before it changes anything (#10).

No data folder, database, bucket, Redis user, secret, version number or container is made or
touched until every check has passed: the instance's host ports are free on this engine
(or its own), the servers its resources live on answer with the admin credentials, the
secrets its services need are set, every image it runs is on the engine (built or pulled
now when missing), and the new containers can be created — Compose and the engine accept
the new file, in a trial project of their own that never starts — and each one's command
is in its image. Until then a running instance keeps serving as it was: a spec change that
cannot start fails here, not after Compose stopped the old containers.

The helpers at the top are pure (tested on data); `Preflight` runs the checks.
"""

from __future__ import annotations

import copy
import hashlib
import socket
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ruamel.yaml import YAML

from envplane.backends.runtime.base import Runtime
from envplane.backends.runtime.facts import Launch
from envplane.compose.model import VolumeSyntaxError, parse_volume
from envplane.compose.render import to_yaml
from envplane.errors import BackendError
from envplane.target import Target

LABEL_TRIAL = "envplane.trial"  # a pre-flight container: created, never started, removed after
UNTOUCHED = "nothing was changed: a running instance keeps its containers"


def trial_project(target: Target) -> str:
    return f"{target.project}-trial"


def image_of(project: str, service: str, svc: Mapping[str, Any]) -> str:
    """The image a service runs: its `image:`, else the one Compose builds for it."""
    image = svc.get("image")
    return str(image) if image else f"{project}-{service}"


def trial_model(rendered: Mapping[str, Any], project: str) -> dict[str, Any]:
    """The instance's new Compose file as a trial: created beside the running instance
    without touching it. No container names, network names or volumes of the instance's
    (a trial container mounts nothing, so creating it makes no folder or volume); every
    service names the image it runs — the one Compose would build for the instance's
    project — so the trial project (`create --no-build --pull never`) finds the images the
    images step made."""
    data = copy.deepcopy(dict(rendered))
    data.pop("volumes", None)
    for name, svc in (data.get("services") or {}).items():
        svc["image"] = image_of(project, name, svc)  # `build:` stays: the images step builds with it
        svc.pop("container_name", None)
        svc.pop("volumes", None)
        svc["labels"] = {**(svc.get("labels") or {}), LABEL_TRIAL: "true"}
    for network in (data.get("networks") or {}).values():
        if isinstance(network, dict) and not network.get("external"):
            network.pop("name", None)
    return data


def proof(file_text: str, images: Mapping[str, str]) -> str:
    """What a passed trial proved: this file with these images. The same again needs no trial."""
    listed = "".join(f"{name}={image}\n" for name, image in sorted(images.items()))
    return hashlib.sha256(f"{file_text}\0{listed}".encode()).hexdigest()


def previous_file(text: str, running: Mapping[str, str]) -> str | None:
    """The instance's last Compose file, its services pinned to the image ids their running
    containers run (`service -> sha256:…`): what `up` starts again when the new containers do
    not become healthy. A tag may name another image by now (`up --build`); an id does not.
    None when nothing of it runs."""
    if not running:
        return None
    data = YAML(typ="safe").load(text)
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return None
    for name, image in running.items():
        svc = services.get(name)
        if isinstance(svc, dict) and image:
            svc["image"] = image
            svc.pop("build", None)
            svc["pull_policy"] = "never"
    return to_yaml(data)


def mount_targets(svc: Mapping[str, Any]) -> list[str]:
    """Where a service mounts something over its image's files (volumes and tmpfs)."""
    found = []
    for raw in svc.get("volumes") or []:
        try:
            found.append(parse_volume(raw).target)
        except VolumeSyntaxError:
            continue
    tmpfs = svc.get("tmpfs") or []
    for entry in [tmpfs] if isinstance(tmpfs, str) else tmpfs:
        found.append(str(entry).split(":", 1)[0])
    return found


def command_paths(launch: Launch, mounts: Iterable[str]) -> list[str] | None:
    """Where the container's program may be found in its image, as the engine looks for it
    (argv[0] as a path, else each folder of PATH). None when a mount may provide it: a
    mounted file is not in the image, so the image cannot prove it absent."""
    if not launch.argv:
        return []
    program = launch.argv[0]
    if "/" in program:
        candidates = [str(PurePosixPath(launch.workdir or "/") / program)]
    else:
        candidates = [str(PurePosixPath(folder or "/") / program) for folder in launch.path.split(":")]
    covered = [PurePosixPath(m) for m in mounts if m.startswith("/")]
    if any(PurePosixPath(c).is_relative_to(m) for c in candidates for m in covered):
        return None
    return candidates


@dataclass
class Preflight:
    runtime: Runtime

    def ports(self, target: Target) -> None:
        """Fail before starting anything when another app, instance or program holds a port.

        The isolation check covers this app's instances; this covers everything else
        on the host (other apps' previews, a database someone started by hand). Ports are
        looked at on the host that binds them: a remote host's through its engine.
        """
        from envplane.hosts import remote

        taken = remote.listening(target.engine) if target.engine.remote else None
        for service in target.services:
            for port in service.ports:
                if port.published is None:
                    continue
                users = self.runtime.port_users(port.published, port.protocol)
                others = [u for u in users if (u[1], u[2]) != (target.app, target.id)]
                if others:
                    name, app, instance = others[0]
                    owner = f"app {app}, instance {instance}" if app else "not an envplane container"
                    raise BackendError(
                        f"host port {port.published}/{port.protocol} of {service.name} is taken by "
                        f"container {name} ({owner})",
                        f"free it, or set environments.{target.env.name}.ports.{service.name}."
                        f"{port.target} (or port_base) in envplane.yaml",
                    )
                if not users and (taken.taken(port.published, port.protocol) if taken is not None
                                  else port.protocol == "tcp" and not port_free(port.published)):
                    raise BackendError(
                        f"host port {port.published}/{port.protocol} of {service.name} is in use by another "
                        f"program{'' if target.engine.local else ' on ' + target.engine.describe()}",
                        f"free it, or set environments.{target.env.name}.ports.{service.name}."
                        f"{port.target} in envplane.yaml",
                    )

    def images(self, target: Target, file: Path, data: Mapping[str, Any]) -> dict[str, str]:
        """Every image the instance runs is on the engine: a missing one with `build:` is
        built now, any other pulled now. Returns each service's image id."""
        services: Mapping[str, Any] = data.get("services") or {}
        refs = {s.name: image_of(target.project, s.name, services[s.name]) for s in target.services}
        by_ref = {ref: self.runtime.image_id(ref) for ref in dict.fromkeys(refs.values())}  # once an image
        found = {name: by_ref[ref] for name, ref in refs.items()}
        to_build = tuple(name for name, got in found.items() if got is None and "build" in services[name])
        if to_build:
            self.runtime.build(target.project, file, to_build)
        pulled = set()
        for name, got in found.items():
            if got is None and name not in to_build and refs[name] not in pulled:
                self._pull(name, refs[name])
                pulled.add(refs[name])
        ids = {name: got or self.runtime.image_id(refs[name]) for name, got in found.items()}
        lost = [name for name, got in ids.items() if got is None]
        if lost:  # built or pulled a moment ago, gone now (someone ran `docker image prune`)
            raise BackendError(f"image {refs[lost[0]]} of service {lost[0]} is not on the engine", UNTOUCHED)
        return {name: str(got) for name, got in ids.items()}

    def _pull(self, service: str, image: str) -> None:
        try:
            self.runtime.pull(image)
        except BackendError as exc:
            raise BackendError(
                f"image {image} of service {service} is not on this engine and cannot be pulled: "
                f"{_reason(exc.message)}",
                f"build it (give the service `build:`), load it (`docker load`), or fix the name; "
                f"{UNTOUCHED}") from None

    def trial(self, target: Target, file: Path, data: Mapping[str, Any]) -> None:
        """Create the new containers in a trial project (never started) and find each one's
        command in its image; remove the trial whatever happens."""
        project = trial_project(target)
        services: Mapping[str, Any] = data.get("services") or {}
        self.runtime.remove_project(project)  # a trial that a killed run left behind
        try:
            try:
                self.runtime.create(project, file)
            except BackendError as exc:
                raise BackendError(f"the new containers of {target.app} {target.id} cannot be created: "
                                   f"{_reason(exc.message)}",
                                   f"{create_hint(exc.message)}; {UNTOUCHED}") from None
            with tempfile.TemporaryDirectory(prefix="envplane-preflight-") as scratch:
                for launch in self.runtime.launches(project):
                    self._command(target, launch, services.get(launch.service) or {}, Path(scratch))
        finally:
            self.runtime.remove_project(project)

    def _command(self, target: Target, launch: Launch, svc: Mapping[str, Any], scratch: Path) -> None:
        paths = command_paths(launch, mount_targets(svc))
        if not paths or any(self.runtime.has_path(launch.container, p, scratch) for p in paths):
            return
        program = launch.argv[0]
        where = "" if "/" in program else f" (looked in PATH {launch.path})"
        raise BackendError(
            f"service {launch.service} of {target.app} {target.id} cannot start: its command "
            f"{program!r} is not in image {launch.image}{where}",
            f"fix `command:` or `entrypoint:` of {launch.service}, or install {program} in the image; "
            f"{UNTOUCHED}")


# Each env instance has its own network; dockerd's default pools hold about 30 on a host.
NO_ADDRESS_POOL = "could not find an available, non-overlapping IPv4 address pool"


def create_hint(message: str) -> str:
    """What to do when the engine refused to create an instance's containers."""
    if NO_ADDRESS_POOL in message:
        return ("the engine has no address range left for another network (each instance has its "
                "own): remove unused ones (`docker network prune`) or give dockerd smaller pools, "
                '"default-address-pools": [{"base": "10.200.0.0/16", "size": 24}] in '
                "/etc/docker/daemon.json holds 256")
    return "fix the Compose file"


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _reason(message: str) -> str:
    """The engine's or Compose's own words at the end of a failed command's output."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1][-300:] if lines else message

