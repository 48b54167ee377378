"""Waiting for services to be healthy: a Compose healthcheck, else an HTTP probe.

The decision of what to probe is pure (`checks_for`); the probing and waiting is here
too but takes its clock and sleep as arguments so tests can drive it.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from envplane.backends.runtime.facts import ContainerFact
from envplane.errors import BackendError
from envplane.target import Target


@dataclass(frozen=True)
class HealthCheck:
    service: str
    kind: str  # "healthcheck" (the engine's) or "http"
    url: str | None = None


def checks_for(target: Target, host: str = "127.0.0.1") -> list[HealthCheck]:
    """What 'healthy' means for each service of the instance."""
    declared = target.compose.data.get("services", {})
    checks = []
    for service in target.services:
        if target.env.runtime != "process" and "healthcheck" in declared.get(service.name, {}):
            checks.append(HealthCheck(service.name, "healthcheck"))
            continue
        if service.health and service.public is not None:
            port = service.public_host_port
            if target.env.runtime == "process":
                port = int(service.env.get("PORT", service.public.port))
            if port is not None:
                checks.append(HealthCheck(service.name, "http", f"http://{host}:{port}{service.health}"))
    return checks


def probe(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, str(reason)


def wait_healthy(
    checks: Sequence[HealthCheck],
    containers: Callable[[], list[ContainerFact]],
    timeout: float,
    on_progress: Callable[[str, str], None] = lambda service, state: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return when every check passes; raise BackendError naming the ones that did not."""
    deadline = clock() + timeout
    pending = {c.service: c for c in checks}
    pause = 0.1  # poll fast while a service is likely about to answer, then back off
    last: dict[str, str] = {}
    while pending:
        facts = {c.service: c for c in containers()}
        for name, check in list(pending.items()):
            ok, state = _one(check, facts.get(name))
            last[name] = state
            on_progress(name, state)
            if ok:
                del pending[name]
        if not pending:
            return
        if clock() >= deadline:
            detail = ", ".join(f"{n} ({last.get(n, 'no answer')})" for n in sorted(pending))
            raise BackendError(
                f"not healthy after {timeout:.0f} s: {detail}",
                "look at `envplane logs ENV SERVICE` for why",
            )
        sleep(pause)
        pause = min(pause * 1.5, 1.0)


def _one(check: HealthCheck, fact: ContainerFact | None) -> tuple[bool, str]:
    if check.kind == "http":
        assert check.url is not None
        ok, state = probe(check.url)
        # An image's own HEALTHCHECK counts too: answering is not enough while it says starting.
        if ok and fact is not None and fact.health not in (None, "healthy"):
            return False, f"{state}, container {fact.health}"
        return ok, state
    if fact is None:
        return False, "no container"
    if fact.state != "running":
        return False, fact.state
    return fact.health == "healthy", fact.health or "no healthcheck"
