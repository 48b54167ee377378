"""`envplane verify`: the isolation proof on a live host (seed 000 §10, "The Proof").

Observe every container, network and volume envplane labelled; then, purely:
each belongs to exactly one instance, no two instances share a network, volume,
host port, data path or domain, and every container of a running instance is healthy.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from envplane.backends.runtime.compose import inspect_existing
from envplane.commands import docker as docker_cmd
from envplane.run import run
from envplane.target import LABEL_APP, LABEL_ENV, LABEL_INSTANCE

_HOST_RULE = re.compile(r"Host\(`([^`]+)`\)")


@dataclass(frozen=True)
class Resource:
    kind: str  # container, network, volume
    name: str
    labels: Mapping[str, str]
    state: str = ""
    health: str | None = None
    ports: tuple[str, ...] = ()  # "8080/tcp"
    paths: tuple[str, ...] = ()  # host paths it stores data in
    networks: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()

    @property
    def owner(self) -> str | None:
        keys = (self.labels.get(LABEL_APP), self.labels.get(LABEL_ENV), self.labels.get(LABEL_INSTANCE))
        return "/".join(keys) if all(keys) else None  # type: ignore[arg-type]


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str
    detail: str


@dataclass
class Report:
    resources: int = 0
    instances: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def analyse(resources: Iterable[Resource]) -> Report:
    items = list(resources)
    report = Report(resources=len(items))
    for r in items:
        if r.owner is None:
            report.findings.append(Finding("unowned", f"{r.kind} {r.name}",
                                           "has envplane labels but not all of app, env, instance"))
        else:
            report.instances.add(r.owner)
    containers = [r for r in items if r.kind == "container" and r.owner]
    report.findings += _shared(containers, "network", lambda c: c.networks)
    report.findings += _shared(containers, "volume", lambda c: c.volumes)
    report.findings += _shared(containers, "host port", lambda c: c.ports)
    report.findings += _shared(containers, "domain", _domains)
    report.findings += _nested_paths(items)
    report.findings += _unhealthy(containers)
    return report


def _shared(containers: list[Resource], kind: str, values: Any) -> list[Finding]:
    owners: dict[str, set[str]] = defaultdict(set)
    for c in containers:
        for value in values(c):
            owners[value].add(str(c.owner))
    return [
        Finding(f"shared {kind}", value, "used by " + " and ".join(sorted(who)))
        for value, who in sorted(owners.items())
        if len(who) > 1
    ]


def _domains(container: Resource) -> tuple[str, ...]:
    found: list[str] = []
    for key, value in container.labels.items():
        if key.startswith("traefik.http.routers.") and key.endswith(".rule"):
            found += _HOST_RULE.findall(value)
    return tuple(found)


def _nested_paths(items: list[Resource]) -> list[Finding]:
    paths = [(PurePosixPath(p), str(r.owner)) for r in items if r.owner for p in r.paths]
    findings = []
    for i, (a, who_a) in enumerate(paths):
        for b, who_b in paths[i + 1:]:
            if who_a != who_b and (a == b or a.is_relative_to(b) or b.is_relative_to(a)):
                findings.append(Finding("shared data path", f"{a} / {b}", f"used by {who_a} and {who_b}"))
    return findings


def _unhealthy(containers: list[Resource]) -> list[Finding]:
    out = []
    for c in containers:
        if c.state != "running":
            out.append(Finding("not running", f"container {c.name}", f"{c.owner}: {c.state}"))
        elif c.health not in (None, "healthy"):
            out.append(Finding("unhealthy", f"container {c.name}", f"{c.owner}: {c.health}"))
    return out


# Observation: what the engine says, turned into Resources.

def observe() -> list[Resource]:
    return [*_containers(), *_labelled("network"), *_labelled("volume")]


def _containers() -> list[Resource]:
    listed = run(docker_cmd.all_envplane_containers(), what="docker ps").stdout
    ids = [json.loads(line)["ID"] for line in listed.splitlines() if line.strip()]
    if not ids:
        return []
    return [container_resource(item) for item in json.loads(inspect_existing(ids))]


def container_resource(item: Mapping[str, Any]) -> Resource:
    state = item.get("State") or {}
    config = item.get("Config") or {}
    host = item.get("HostConfig") or {}
    ports = {
        f"{binding['HostPort']}/{key.partition('/')[2] or 'tcp'}"
        for key, bindings in (host.get("PortBindings") or {}).items()
        for binding in bindings or []
        if binding.get("HostPort")
    }
    mounts = item.get("Mounts") or []
    return Resource(
        kind="container",
        name=str(item.get("Name", "")).lstrip("/"),
        labels=dict(config.get("Labels") or {}),
        state=str(state.get("Status", "")),
        health=(state.get("Health") or {}).get("Status"),
        ports=tuple(sorted(ports)),
        networks=tuple(sorted(((item.get("NetworkSettings") or {}).get("Networks") or {}).keys())),
        volumes=tuple(sorted(m["Name"] for m in mounts if m.get("Type") == "volume" and m.get("Name"))),
    )


def _labelled(kind: str) -> list[Resource]:
    listed = run(["docker", kind, "ls", "--filter", f"label={LABEL_APP}", "--format", "{{.Name}}"],
                 what=f"docker {kind} ls").stdout.split()
    if not listed:
        return []
    data = json.loads(run(["docker", kind, "inspect", *listed], what=f"docker {kind} inspect").stdout)
    out = []
    for item in data:
        options = item.get("Options") or {}
        device = options.get("device") if options.get("o") == "bind" else None
        out.append(Resource(kind=kind, name=str(item.get("Name")), labels=dict(item.get("Labels") or {}),
                            paths=(device,) if device else ()))
    return out
