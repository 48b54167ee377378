"""`envplane init`: a starter envplane.yaml guessed from a Compose file, with reasons.

Guessing is pure (Compose data in, spec text and explanations out); the CLI reads the
Compose file and writes the result.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envplane.compose.model import parse_port
from envplane.target import HostUse

# Images whose services are data stores or tooling, not what users browse to.
_BACKING_IMAGES = (
    "postgres", "mysql", "mariadb", "mongo", "redis", "rabbitmq", "elasticsearch", "kibana",
    "logstash", "qdrant", "minio", "memcached", "mssql", "azure-sql", "clickhouse", "neo4j",
    "kafka", "zookeeper", "etcd", "nats",
)
_API_NAMES = ("api", "backend", "server")
_URL_PATH = re.compile(r"https?://[^/\s\"']+(/[^\s\"']*)")
# A URL path whose last part names a health endpoint: /health, /healthz, /api/health,
# /_health, /ping, /status/ready, /readyz, /livez.
_HEALTH_PATH = re.compile(
    r"(?<![\w.:/-])((?:/[\w.-]+)*/_?(?:health(?:z|check|-check)?|ping|ready|readyz|livez|status)(?:/ready)?)"
    r"(?![\w/-])")


def app_name(raw: str) -> str:
    """A valid app name made from any text (a folder name, a mistyped --app): lowercase
    ASCII, every run of other characters one '-', at most 40 characters, a letter first."""
    ascii_text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if not name[:1].isalpha() or len(name) < 2:
        name = f"app-{name}" if name else "app"
    return name[:40].rstrip("-")


@dataclass(frozen=True)
class Guess:
    service: str
    public_port: int | None
    path: str
    health: str | None
    reasons: tuple[str, ...]
    healthcheck: bool = False  # Compose's healthcheck says when it is ready


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
        health = None
        if port is not None:
            health, why = _health(svc, port)
            reasons.append(why)
        guesses.append(Guess(name, port, path, health, tuple(reasons), _has_healthcheck(svc)))
    return guesses


def spec_text(app: str, domain: str, compose: str, guesses: list[Guess],
              uses: Sequence[HostUse] = ()) -> str:
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
        elif not g.healthcheck:
            lines.append(f"    # health: /healthz  # set the path that answers 2xx once {g.service} is ready")
    for g in guesses:
        if g.public_port is None:
            lines.append(f"# {g.service}: " + "; ".join(g.reasons))
    return "\n".join(lines + _shared_lines(uses)) + "\n"


_SHARED_KEYS = {"network_mode": "host_network", "pid": "host_pid", "ipc": "host_ipc"}


def _shared_lines(uses: Sequence[HostUse]) -> list[str]:
    """A commented-out `shared:` for what the services take from the host: staging,
    production and every PR would share it, which the plan refuses until it is declared."""
    binds = sorted({u.value for u in uses if u.kind == "bind"})
    modes: dict[str, list[str]] = {}
    for use in uses:
        if use.kind in _SHARED_KEYS:
            modes.setdefault(_SHARED_KEYS[use.kind], []).append(use.service)
    if not binds and not modes:
        return []
    lines = ["# Every instance on one host would share these host folders and namespaces;",
             "# `envplane plan` refuses that until you declare it (or move data under ${DATA_PATH}):",
             "# shared:"]
    if binds:
        lines.append(f"#   binds: [{', '.join(binds)}]")
    lines += [f"#   {key}: [{', '.join(names)}]" for key, names in modes.items()]
    return lines


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


def _health(svc: Mapping[str, Any], port: int) -> tuple[str | None, str]:
    """The health path of a public service and where it came from, or None and why.

    A guessed `/` would make `up` wait its whole timeout on an app that answers 404 there;
    without a sign of the real path the spec leaves it out, and `up` checks the port.
    """
    if _has_healthcheck(svc):
        match = _URL_PATH.search(_text(svc["healthcheck"]["test"]))
        if match:
            return match.group(1), f"health path {match.group(1)} from its Compose healthcheck"
        return None, "no health path: `up` waits for its Compose healthcheck, then checks the port"
    for key, where in (("labels", "its labels"), ("command", "its command"),
                       ("entrypoint", "its entrypoint"), ("environment", "its environment")):
        found = _HEALTH_PATH.search(_text(svc.get(key)))
        if found:
            return found.group(1), f"health path {found.group(1)} from {where}"
    return None, ("no health path found (no Compose healthcheck, nothing like /health in the file): "
                  f"`up` checks that port {port} accepts connections")


def _has_healthcheck(svc: Mapping[str, Any]) -> bool:
    check = svc.get("healthcheck") or {}
    test = check.get("test")
    return bool(test) and not check.get("disable") and test not in (["NONE"], "NONE")


def _text(value: Any) -> str:
    """Every string of a Compose value (a list, a mapping of labels or variables) in one line."""
    if isinstance(value, Mapping):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value or "")
