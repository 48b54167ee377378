"""Host ports of one env instance: each env gets its own block (DESIGN.md, seed 003).

- offset: the Compose file's host port plus the env's offset (staging +10000 by default,
  moved on past the Compose ports when +10000 would land on one; `port_offset: 1`
  gives seed 003's table).
- block: one PR of `test` gets `port_base + (pr - 1) * port_stride + slot`, so PR
  instances never collide with each other, however many there are. The default base
  moves by a per-app step (0-4900, from the app's name) so that two apps on one host do
  not both put their PR 1 on port 30000.
- ephemeral: the engine picks a free port (CI runs).
An explicit `environments.<env>.ports.<service>.<container port>` always wins.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from envplane.spec.ladder import EnvConfig


@dataclass(frozen=True)
class PortPlan:
    """Where one container port of one service is published on the host."""

    service: str
    index: int  # position in the service's `ports` list (for error lines)
    target: int
    published: int | None  # None: not published, or left to the engine
    protocol: str = "tcp"
    host_ip: str = ""
    source: int | None = None  # the host port the Compose file asked for


@dataclass(frozen=True)
class PortRequest:
    service: str
    index: int
    target: int
    published: int | None
    protocol: str
    host_ip: str


class PortError(ValueError):
    def __init__(self, request: PortRequest, message: str, hint: str) -> None:
        super().__init__(message)
        self.request = request
        self.message = message
        self.hint = hint


def published_port(ports: Sequence[PortPlan], target: int) -> int | None:
    """The host port a container port is published on, if it is."""
    return next((p.published for p in ports if p.target == target and p.published is not None), None)


def app_slot(app: str) -> int:
    """A stable per-app shift of the PR block: a multiple of 100 from 0 to 4900."""
    return (zlib.crc32(app.encode()) % 50) * 100


def assign(
    env: EnvConfig, requests: Sequence[PortRequest], pr: int | None, app: str = ""
) -> tuple[list[PortPlan], list[PortError]]:
    """Give every requested port its host port in `env`; collect what cannot be placed."""
    plans: list[PortPlan] = []
    errors: list[PortError] = []
    slot = 0
    offset = free_offset(env, requests) if env.port_offset_auto else env.port_offset
    for req in requests:
        override = _override(env.ports, req)
        if override is not None:
            plans.append(_plan(req, override))
            continue
        if req.published is None or env.port_mode == "ephemeral":
            plans.append(_plan(req, None))
            continue
        if env.port_mode == "offset":
            port = req.published + offset
            if not 1 <= port <= 65535:
                errors.append(
                    PortError(
                        req,
                        f"host port {req.published} {offset:+d} (env {env.name}) "
                        f"= {port} is out of range 1-65535",
                        f"set environments.{env.name}.ports.{req.service}.{req.target} "
                        "or a smaller port_offset",
                    )
                )
                continue
            plans.append(_plan(req, port))
            continue
        # block mode
        if slot >= env.port_stride:
            errors.append(
                PortError(
                    req,
                    f"env {env.name} publishes more than port_stride={env.port_stride} ports",
                    f"raise environments.{env.name}.port_stride",
                )
            )
            continue
        base = env.port_base + (app_slot(app) if env.port_base_auto else 0)
        block_start = base + ((pr or 1) - 1) * env.port_stride
        port = block_start + slot
        slot += 1
        if port > 65535:
            errors.append(
                PortError(
                    req,
                    f"PR {pr} has no room in the {env.name} port block "
                    f"({base}-65535, {env.port_stride} per PR)",
                    f"lower environments.{env.name}.port_base or port_stride, "
                    "or set port_mode: ephemeral",
                )
            )
            continue
        plans.append(_plan(req, port))
    return plans, errors


# The host ports of envplane's own platform (platform/compose.yaml and envplane.yaml: 25432,
# 26379 and 27333, +10 per env up to +50), which runs beside the apps on one machine.
PLATFORM_PORTS = frozenset(p + step for p in (25432, 26379, 27333) for step in range(0, 60, 10))


def free_offset(env: EnvConfig, requests: Sequence[PortRequest]) -> int:
    """The smallest offset from the env's default that lands on none of the Compose ports
    and none of the platform's.

    The Compose ports are what production (offset 0) publishes, so the env never takes
    a port production holds; docker's +20000 would put Compose's 5432 on the platform's
    PostgreSQL. Deterministic: the same spec always gives the same ports.
    """
    wanted = {r.published for r in requests if r.published is not None}
    if not wanted:
        return env.port_offset
    taken = wanted | PLATFORM_PORTS
    for offset in range(env.port_offset, env.port_offset + 1000):
        if max(wanted) + offset > 65535:
            break
        if not any(p + offset in taken for p in wanted):
            return offset
    return env.port_offset  # nothing fits; assign() reports the ports out of range


def _override(overrides: Mapping[str, Mapping[int, int]], req: PortRequest) -> int | None:
    by_service = overrides.get(req.service)
    if not by_service:
        return None
    return by_service.get(req.target)


def _plan(req: PortRequest, published: int | None) -> PortPlan:
    return PortPlan(
        service=req.service,
        index=req.index,
        target=req.target,
        published=published,
        protocol=req.protocol,
        host_ip=req.host_ip,
        source=req.published,
    )
