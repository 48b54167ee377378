"""Parsers of what the Docker CLI prints. Pure: text in, facts out (tested on recorded output)."""

from __future__ import annotations

import json
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
    return ContainerFact(
        id=str(item.get("Id", "")),
        name=str(item.get("Name", "")).lstrip("/"),
        state=str(state.get("Status", "unknown")),
        health=health,
        labels=dict(config.get("Labels") or {}),
        ports=tuple(sorted(set(ports))),
    )


def names(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]
