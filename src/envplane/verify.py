"""`envplane verify`: the isolation proof on a live host (seed 000 §10, "The Proof").

Observe every container, network and volume envplane labelled; then, purely:
each belongs to exactly one instance, no two instances share a network, volume,
host port, data path or domain, nor the host's network, PID or IPC namespace or a host
folder — unless each side's `envplane.shared` label says the spec shares it on purpose
(then it is listed as declared sharing, not a violation) — no two instances' containers
hold the same credential and none holds an admin one, no container is left half-replaced
by an interrupted Compose recreate, and every container of a running instance is healthy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from envplane.backends.runtime.compose import inspect_existing
from envplane.backends.runtime.facts import half_replaced
from envplane.commands import docker as docker_cmd
from envplane.isolation import LABEL_SHARED, NAMESPACE_KINDS
from envplane.names import Instance
from envplane.run import run
from envplane.target import LABEL_APP, LABEL_ENV, LABEL_INSTANCE

_HOST_RULE = re.compile(r"Host\(`([^`]+)`\)")
# The credentials envplane hands to containers: the S3 key, and the password of any URL
# (DATABASE_URL, REDIS_URL, ...). Compared by their SHA-256 only, never shown.
CREDENTIAL_VARIABLES = ("S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")
_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:([^@\s]+)@")
ADMIN_VARIABLES = ("ENVPLANE_POSTGRES_URL", "ENVPLANE_REDIS_URL", "ENVPLANE_S3_ACCESS_KEY",
                   "ENVPLANE_S3_SECRET_KEY")


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
    binds: tuple[str, ...] = ()  # host folders a container bind-mounts
    host_modes: tuple[str, ...] = ()  # "network_mode", "pid", "ipc": the host's own
    # (variable, sha256 of the credential it holds): never the value itself
    credentials: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def shares(self) -> frozenset[str]:
        """What the spec lets this container share: `network_mode:host`, `bind:/srv/media`, …"""
        return frozenset(item for item in self.labels.get(LABEL_SHARED, "").split(";") if item)

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
    shared: list[Finding] = field(default_factory=list)  # declared in the spec: not violations

    @property
    def ok(self) -> bool:
        return not self.findings


def analyse(resources: Iterable[Resource], admin: Iterable[str] = ()) -> Report:
    """`admin`: SHA-256 digests of the admin credentials (admin_digests) no container may hold."""
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
    for declared, finding in [*_host_namespaces(containers), *_nested_paths(items)]:
        (report.shared if declared else report.findings).append(finding)
    report.findings = list(dict.fromkeys(report.findings))
    report.shared = list(dict.fromkeys(report.shared))
    report.findings += _credentials(containers, frozenset(admin))
    report.findings += _half_replaced(containers)
    report.findings += _unhealthy(containers)
    return report


def credential_digests(env: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(variable, sha256) of each credential in a container's `VAR=value` list."""
    out = set()
    for entry in env:
        name, _, value = entry.partition("=")
        found = _URL_PASSWORD.match(value)
        secret = value if name in CREDENTIAL_VARIABLES else (found.group(1) if found else "")
        if secret:
            out.add((name, _digest(secret)))
    return tuple(sorted(out))


def admin_digests(environ: Mapping[str, str]) -> frozenset[str]:
    """Digests of the admin credentials in the environment envplane runs with."""
    values = [environ.get(name, "") for name in ADMIN_VARIABLES]
    secrets = [found.group(1) if (found := _URL_PASSWORD.match(v)) else v for v in values]
    return frozenset(_digest(s) for s in secrets if s)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _credentials(containers: list[Resource], admin: frozenset[str]) -> list[Finding]:
    """One credential in two instances' containers, or an admin credential in any."""
    holders: dict[str, set[str]] = defaultdict(set)
    names: dict[str, set[str]] = defaultdict(set)
    out = []
    for c in containers:
        for name, digest in c.credentials:
            holders[digest].add(str(c.owner))
            names[digest].add(name)
            if digest in admin:
                out.append(Finding("admin credential", f"{name} of container {c.name}",
                                   f"{c.owner} holds an admin credential"))
    out += [Finding("shared credential", ", ".join(sorted(names[d])), "held by " + " and ".join(sorted(who)))
            for d, who in sorted(holders.items(), key=lambda item: sorted(names[item[0]])) if len(who) > 1]
    return out


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


def _host_namespaces(containers: list[Resource]) -> list[tuple[bool, Finding]]:
    """The host's network, PID or IPC namespace used by containers of two instances."""
    out = []
    for key, kind in NAMESPACE_KINDS.items():
        users = [c for c in containers if key in c.host_modes]
        owners = sorted({str(c.owner) for c in users})
        if len(owners) > 1:
            declared = all(f"{key}:host" in c.shares for c in users)
            out.append((declared, Finding(f"{'declared' if declared else 'shared'} {kind}", f"({key}: host)",
                                          "used by " + " and ".join(owners))))
    return out


@dataclass(frozen=True)
class _HostPath:
    path: PurePosixPath
    owner: str
    data: bool  # a volume's folder (under a data path), else a container's bind mount
    reason: str  # why it may be shared: "declared", "app files", or "" (it may not)


def _nested_paths(items: list[Resource]) -> list[tuple[bool, Finding]]:
    """Host folders of two instances, equal or one inside the other."""
    paths = [_HostPath(PurePosixPath(p), str(r.owner), True, "") for r in items if r.owner for p in r.paths]
    paths += [_HostPath(PurePosixPath(b), str(c.owner), False, _bind_reason(b, c.shares))
              for c in items if c.owner and c.kind == "container" for b in c.binds]
    out = []
    for i, a in enumerate(paths):
        for b in paths[i + 1:]:
            if a.owner == b.owner or not (a.path == b.path or a.path.is_relative_to(b.path)
                                          or b.path.is_relative_to(a.path)):
                continue
            subject = str(a.path) if a.path == b.path else f"{a.path} / {b.path}"
            detail = "used by " + " and ".join(sorted((a.owner, b.owner)))
            if a.data and b.data:
                out.append((False, Finding("shared data path", subject, detail)))
            elif a.reason and b.reason:
                kind = "app files" if a.reason == b.reason == "app files" else "declared host path"
                out.append((True, Finding(kind, subject, detail)))
            else:
                out.append((False, Finding("shared host path", subject, detail)))
    return out


def _bind_reason(source: str, shares: frozenset[str]) -> str:
    if f"app:{source}" in shares:
        return "app files"
    declared = [os.path.expanduser(item[len("bind:"):]) for item in shares if item.startswith("bind:")]
    if any(PurePosixPath(source).is_relative_to(PurePosixPath(d)) for d in declared):
        return "declared"
    return ""


def _half_replaced(containers: list[Resource]) -> list[Finding]:
    """Containers under Compose's temporary name (facts.half_replaced): a later `compose up`
    would keep them beside the real one; envplane's next `up` puts them right."""
    out = []
    for c in containers:
        if half_replaced(c.name) is not None:
            env, instance = c.labels[LABEL_ENV], c.labels[LABEL_INSTANCE]
            again = f"envplane up {env}{Instance.from_id(env, instance).flags}"
            out.append(Finding("half-replaced", f"container {c.name}",
                               f"{c.owner}: left by an interrupted Compose recreate; the next `{again}` "
                               "puts it right"))
    return out


def _unhealthy(containers: list[Resource]) -> list[Finding]:
    out = []
    for c in containers:
        if c.state != "running":
            out.append(Finding("not running", f"container {c.name}", f"{c.owner}: {c.state}"))
        elif c.health not in (None, "healthy"):
            out.append(Finding("unhealthy", f"container {c.name}", f"{c.owner}: {c.health}"))
    return out


# Observation: what the engine says, turned into Resources.

def observe(env: dict[str, str] | None = None) -> list[Resource]:
    """What one engine holds (`env`: its process environment, hosts.connect.docker_env).
    Each engine is its own host: its ports and folders are compared with its own only."""
    return [*_containers(env), *_labelled("network", env), *_labelled("volume", env)]


def _containers(env: dict[str, str] | None) -> list[Resource]:
    listed = run(docker_cmd.all_envplane_containers(), env=env, what="docker ps").stdout
    ids = [json.loads(line)["ID"] for line in listed.splitlines() if line.strip()]
    if not ids:
        return []
    return [container_resource(item) for item in json.loads(inspect_existing(ids, env))]


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
    modes = {"network_mode": host.get("NetworkMode"), "pid": host.get("PidMode"), "ipc": host.get("IpcMode")}
    return Resource(
        kind="container",
        name=str(item.get("Name", "")).lstrip("/"),
        labels=dict(config.get("Labels") or {}),
        state=str(state.get("Status", "")),
        health=(state.get("Health") or {}).get("Status"),
        ports=tuple(sorted(ports)),
        networks=tuple(sorted(((item.get("NetworkSettings") or {}).get("Networks") or {}).keys())),
        volumes=tuple(sorted(m["Name"] for m in mounts if m.get("Type") == "volume" and m.get("Name"))),
        binds=tuple(sorted(m["Source"] for m in mounts if m.get("Type") == "bind" and m.get("Source"))),
        host_modes=tuple(key for key, mode in modes.items() if mode == "host"),
        credentials=credential_digests(config.get("Env") or []),
    )


def _labelled(kind: str, env: dict[str, str] | None) -> list[Resource]:
    listed = run(["docker", kind, "ls", "--filter", f"label={LABEL_APP}", "--format", "{{.Name}}"],
                 env=env, what=f"docker {kind} ls").stdout.split()
    if not listed:
        return []
    data = json.loads(inspect_existing(listed, env, kind))
    out = []
    for item in data:
        options = item.get("Options") or {}
        device = options.get("device") if options.get("o") == "bind" else None
        out.append(Resource(kind=kind, name=str(item.get("Name")), labels=dict(item.get("Labels") or {}),
                            paths=(device,) if device else ()))
    return out
