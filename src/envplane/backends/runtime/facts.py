"""Parsers of what the Docker CLI prints. Pure: text in, facts out (tested on recorded output)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ContainerFact:
    id: str
    name: str
    state: str  # running, exited, created, restarting, ...
    health: str | None  # healthy, unhealthy, starting, or None without a healthcheck
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[tuple[int, int, str], ...] = ()  # (container port, host port, protocol)
    image: str = ""  # the id of the image it runs (sha256:…)
    exit_code: int | None = None  # of its last run, once it has stopped
    restarts: int = 0  # how often the engine restarted it (its restart policy)
    health_output: str = ""  # what its healthcheck printed last, unmasked: mask before showing
    pid: int = 0  # its main process on the engine's host, while it runs
    ips: tuple[str, ...] = ()  # its addresses on its networks
    release: str | None = None  # the release it runs (its ENVPLANE_RELEASE), if a release deployed it

    @property
    def service(self) -> str:
        return self.labels.get("com.docker.compose.service", self.name)


def parse_ps_lines(text: str) -> list[str]:
    """Container ids from `docker ps --format '{{json .}}'`, one JSON object a line."""
    ids = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            ids.append(str(json.loads(line)["ID"]))
    return ids


def parse_inspect(text: str) -> list[ContainerFact]:
    """Containers from `docker inspect` JSON."""
    data: list[dict[str, Any]] = json.loads(text or "[]")
    return [_container(item) for item in data]


def _container(item: Mapping[str, Any]) -> ContainerFact:
    state = item.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    config = item.get("Config") or {}
    bindings = ((item.get("NetworkSettings") or {}).get("Ports")) or {}
    ports = []
    for key, hosts in bindings.items():
        port, _, proto = key.partition("/")
        for host in hosts or []:
            if host.get("HostPort"):
                ports.append((int(port), int(host["HostPort"]), proto or "tcp"))
    checks = (state.get("Health") or {}).get("Log") or []
    return ContainerFact(
        id=str(item.get("Id", "")),
        name=str(item.get("Name", "")).lstrip("/"),
        state=str(state.get("Status", "unknown")),
        health=health,
        labels=dict(config.get("Labels") or {}),
        ports=tuple(sorted(set(ports))),
        image=str(item.get("Image") or ""),
        exit_code=state.get("ExitCode") if isinstance(state.get("ExitCode"), int) else None,
        restarts=int(state.get("RestartCount") or 0),
        health_output=str(checks[-1].get("Output") or "").strip()[-500:] if checks else "",
        pid=int(state.get("Pid") or 0),
        release=_release(config.get("Env") or []),
        ips=tuple(str(n["IPAddress"]) for n in (((item.get("NetworkSettings") or {}).get("Networks")) or {})
                  .values() if isinstance(n, Mapping) and n.get("IPAddress")),
    )


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the engine's


@dataclass(frozen=True)
class Launch:
    """What a created container would run: argv (entrypoint + command, as the engine merged
    them with the image's), the PATH it is looked up in, and the working directory."""

    container: str
    service: str
    image: str
    argv: tuple[str, ...]
    path: str = DEFAULT_PATH
    workdir: str = "/"


def parse_launches(text: str) -> list[Launch]:
    """Launches from `docker inspect` JSON of created containers."""
    data: list[dict[str, Any]] = json.loads(text or "[]")
    return [_launch(item) for item in data]


def _launch(item: Mapping[str, Any]) -> Launch:
    config = item.get("Config") or {}
    env = [str(e) for e in config.get("Env") or []]
    path = next((e.removeprefix("PATH=") for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    labels = config.get("Labels") or {}
    return Launch(
        container=str(item.get("Id", "")),
        service=str(labels.get("com.docker.compose.service", "")),
        image=str(config.get("Image", "")),
        argv=tuple(str(a) for a in argv),
        path=path,
        workdir=str(config.get("WorkingDir") or "/"),
    )


_HEALTH = re.compile(r"\((?:health: )?(healthy|unhealthy|starting)\)$")


def parse_states(text: str) -> list[ContainerFact]:
    """Containers from `docker ps` lines of commands.docker.STATE_FORMAT: state and health
    (read from the status: `Up 3 seconds (healthy)`, `(health: starting)`, `(unhealthy)`).
    Their labels hold only the Compose service, and ports are not read: a health wait needs
    no more."""
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        health = _HEALTH.search(str(item["status"])) if item["state"] == "running" else None
        found.append(ContainerFact(
            id=str(item["id"]), name=str(item["name"]), state=str(item["state"]),
            health=health.group(1) if health else None,
            labels={"com.docker.compose.service": str(item["service"])} if item["service"] else {},
        ))
    return found


def _release(environment: list[str]) -> str | None:
    """ENVPLANE_RELEASE from a container's environment; nothing else of it is kept (it
    holds the service's secrets)."""
    for item in environment:
        name, _, value = str(item).partition("=")
        if name == "ENVPLANE_RELEASE":
            return value
    return None


def listening(text: str) -> set[int]:
    """TCP ports listened on from outside the container (not only on loopback), read from
    /proc/PID/net/tcp or tcp6 (hex addresses; state 0A is LISTEN)."""
    found = set()
    for row in text.splitlines()[1:]:
        fields = row.split()
        if len(fields) < 4 or fields[3] != "0A":
            continue
        address, _, port = fields[1].partition(":")
        if not _loopback(address):
            found.add(int(port, 16))
    return found


def _loopback(address: str) -> bool:
    if len(address) == 8:  # IPv4, its bytes in host (little-endian) order: 0100007F is 127.0.0.1
        return address[6:8] == "7F"
    return address in ("00000000000000000000000001000000",) or (
        address[:24] == "0000000000000000FFFF0000" and address[30:32] == "7F")


# Docker Compose replaces a container by creating the new one as "<old id[:12]>_<name>",
# stopping and removing the old one, then renaming the new one. Stopped in between, the
# temporary name stays, and later `compose up`s keep it as one more container of the service.
_TEMPORARY = re.compile(r"^[0-9a-f]{12}_(.+)$")


def half_replaced(name: str) -> str | None:
    """The name Compose meant a container to have, when `name` is its temporary one."""
    found = _TEMPORARY.match(name)
    return found.group(1) if found else None


def names(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]
