"""What 'healthy' means for each service of an instance. Pure: a Target in, checks out.

`plan` names a step per check; `backends/runtime/health.py` waits until they pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from envplane.target import Target


@dataclass(frozen=True)
class HealthCheck:
    service: str
    kind: str  # what answers last: "healthcheck" (the engine's), "http" or "tcp"
    url: str | None = None  # http://host:port/path, or tcp://host:port
    healthcheck: bool = False  # the engine's healthcheck must pass before the probe is tried
    port: int | None = None  # the public container port the probe reaches
    logs: str = ""  # the command that shows the service's logs, for hints

    def describe(self) -> str:
        """What the probe asks, for progress lines: "GET /health", "port 18080"."""
        parts = urlsplit(self.url or "")
        if self.kind == "http":
            return f"GET {parts.path or '/'}"
        return f"port {parts.port}" if parts.hostname != CONTAINER else f"container port {self.port}"


CONTAINER = "{container}"  # in a check's URL: the container's own address, found when probing


def checks_for(target: Target, host: str = "127.0.0.1") -> list[HealthCheck]:
    """What 'healthy' means for each service of the instance: its Compose healthcheck
    passes, then its public port answers — its health path over HTTP, else a connection
    that is accepted and kept (the engine's proxy accepts and drops connections to a
    container port nothing listens on). A public port with no fixed host port is probed on
    the container's own address (a local engine's containers are reachable from its host)."""
    declared = target.compose.data.get("services", {})
    checks = []
    for service in target.services:
        logs = f"envplane logs {target.env.name} {service.name}{target.instance.flags}"
        engine = target.env.runtime != "process" and "healthcheck" in declared.get(service.name, {})
        address, url, kind = None, None, "healthcheck"
        if service.public is not None:
            port = service.public_host_port
            address = f"{host}:{port}" if port is not None else None
            if target.env.runtime == "process":
                # a dev server is held to its health path only
                address = f"{host}:{service.env.get('PORT', service.public.port)}" if service.health else None
            elif address is None and target.engine.local:
                address = f"{CONTAINER}:{service.public.port}"
            if address is not None:
                url, kind = (f"http://{address}{service.health}", "http") if service.health \
                    else (f"tcp://{address}", "tcp")
        if url is not None or engine:
            checks.append(HealthCheck(service.name, kind, url, engine and url is not None,
                                      service.public.port if service.public and url else None, logs))
    return checks


def describe_wait(check: HealthCheck, health: str | None) -> str:
    """The plan step's words for a check: what `up` waits for."""
    parts = urlsplit(check.url or "")
    name = check.service
    engine = f"{name} is healthy (its healthcheck)"
    if check.kind == "healthcheck":
        return f"wait until {engine}"
    where = f"port {parts.port}" if parts.hostname != CONTAINER else f"container port {check.port}"
    answers = f"answers {health}" if check.kind == "http" else f"accepts connections on {where}"
    return f"wait until {engine} and {answers}" if check.healthcheck else f"wait until {name} {answers}"
