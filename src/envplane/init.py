"""`envplane init`: a starter envplane.yaml guessed from a Compose file, with reasons.

Guessing is pure (Compose data in, spec text and explanations out); the CLI reads the
Compose file and writes the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envplane.compose.model import parse_port

# Images whose services are data stores or tooling, not what users browse to.
_BACKING_IMAGES = (
    "postgres", "mysql", "mariadb", "mongo", "redis", "rabbitmq", "elasticsearch", "kibana",
    "logstash", "qdrant", "minio", "memcached", "mssql", "azure-sql", "clickhouse", "neo4j",
    "kafka", "zookeeper", "etcd", "nats",
)
_API_NAMES = ("api", "backend", "server")
_URL_PATH = re.compile(r"https?://[^/\s\"']+(/[^\s\"']*)")


@dataclass(frozen=True)
class Guess:
    service: str
    public_port: int | None
    path: str
    health: str | None
    reasons: tuple[str, ...]


def guess(services: Mapping[str, Any]) -> list[Guess]:
    guesses = []
    public_names = [name for name, svc in services.items() if _looks_public(svc)]
    for name, svc in services.items():
        reasons: list[str] = []
        port = None
        if name in public_names:
            port = _first_target(svc)
            reasons.append(f"public on container port {port}: it publishes a port and is not a data store")
        elif _backing(svc):
            reasons.append(f"not public: image {svc.get('image')} is a data store")
        else:
            reasons.append("not public: it publishes no port")
        path = _path(name, public_names)
        if port is not None and len(public_names) > 1:
            reasons.append(f"served under {path} beside {', '.join(n for n in public_names if n != name)}")
        health = _health(svc) if port is not None else None
        if health:
            reasons.append(f"health path {health} from its Compose healthcheck")
        elif port is not None:
            health = "/"
            reasons.append("health path / is a guess: set the real one")
        guesses.append(Guess(name, port, path, health, tuple(reasons)))
    return guesses


def spec_text(app: str, domain: str, compose: str, guesses: list[Guess]) -> str:
    lines = [
        "# envplane.yaml — written by `envplane init`; see `envplane envs` for the ladder.",
        f"app: {app}",
        f"domain: {domain}",
        f"compose: {compose}",
    ]
    public = [g for g in guesses if g.public_port is not None]
    if public:
        lines.append("services:")
    for g in public:
        lines.append(f"  {g.service}:")
        for reason in g.reasons:
            lines.append(f"    # {reason}")
        lines.append(f"    public: {{port: {g.public_port}, path: {g.path}}}")
        if g.health:
            lines.append(f"    health: {g.health}")
    for g in guesses:
        if g.public_port is None:
            lines.append(f"# {g.service}: " + "; ".join(g.reasons))
    return "\n".join(lines) + "\n"


def _looks_public(svc: Mapping[str, Any]) -> bool:
    return bool(svc.get("ports")) and not _backing(svc)


def _backing(svc: Mapping[str, Any]) -> bool:
    image = str(svc.get("image") or "").lower()
    name = image.rsplit("/", 1)[-1]
    return any(name.startswith(b) for b in _BACKING_IMAGES)


def _first_target(svc: Mapping[str, Any]) -> int:
    return parse_port(svc["ports"][0])[0].target


def _path(name: str, public_names: list[str]) -> str:
    if len(public_names) <= 1:
        return "/"
    if any(word in name.lower() for word in _API_NAMES):
        return "/api"
    frontends = [n for n in public_names if not any(w in n.lower() for w in _API_NAMES)]
    return "/" if frontends and frontends[0] == name else f"/{name}"


def _health(svc: Mapping[str, Any]) -> str | None:
    test = (svc.get("healthcheck") or {}).get("test")
    text = " ".join(test) if isinstance(test, list) else str(test or "")
    match = _URL_PATH.search(text)
    return match.group(1) if match else None
