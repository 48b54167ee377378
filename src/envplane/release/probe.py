"""Measure what the performance gate compares: the p95 latency of a deployed version.

envplane sends the requests itself (seed 000 §5.3 wants p95 < 200 ms on staging), to the
health and public paths of the env's public services, on the ports its containers
publish now, so it measures what runs rather than what the spec says should.
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from envplane.backends.runtime.facts import ContainerFact
from envplane.target import LABEL_SERVICE, Target


@dataclass(frozen=True)
class Measured:
    requests: int
    errors: int
    p95_ms: float | None


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least pct % at or below it."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def probe_urls(target: Target, facts: Sequence[ContainerFact], host: str = "127.0.0.1") -> list[str]:
    """The URL of each public service's health path (else its public path), on the host
    port its running container publishes."""
    urls = []
    for service in target.services:
        if service.public is None:
            continue
        for fact in facts:
            if fact.labels.get(LABEL_SERVICE, fact.service) != service.name or fact.state != "running":
                continue
            port = next((h for c, h, p in fact.ports if c == service.public.port and p == "tcp"), None)
            if port:
                urls.append(f"http://{host}:{port}{service.health or service.public.path}")
                break
    return urls


def measure(urls: Sequence[str], requests: int, timeout: float = 5.0) -> Measured:
    """Send `requests` GETs round-robin over `urls`; a failed request counts as an error
    and is left out of the latency (the health gate speaks for failures)."""
    if not urls:
        return Measured(0, 0, None)
    samples: list[float] = []
    errors = 0
    for i in range(requests):
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(urls[i % len(urls)], timeout=timeout) as response:
                response.read()
                ok = 200 <= response.status < 400
        except (urllib.error.URLError, OSError, TimeoutError):
            ok = False
        if ok:
            samples.append((time.perf_counter() - started) * 1000)
        else:
            errors += 1
    return Measured(requests, errors, round(percentile(samples, 95), 1) if samples else None)
