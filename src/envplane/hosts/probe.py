"""HTTP probes of an instance on its host: health checks and the p95 measurement.

A remote host's published ports listen there, not here: the probes go through an SSH
tunnel to the host (ssh:// engines) or to the host's address (tcp://), so they measure
the instance where it runs. Local engines are probed as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

from envplane.backends.runtime.health import HealthCheck
from envplane.hosts.connect import tunnel
from envplane.hosts.engine import Engine


def _where(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _moved(url: str, address: tuple[str, int]) -> str:
    host, port = address
    return urlunsplit(urlsplit(url)._replace(netloc=f"{host}:{port}"))


@contextlib.contextmanager
def reached_urls(engine: Engine, urls: Sequence[str]) -> Iterator[list[str]]:
    """The URLs (on the engine's host) as this machine reaches them while the block runs."""
    if engine.local or not urls:
        yield list(urls)
        return
    with tunnel(engine, [_where(u) for u in urls]) as near:
        yield [_moved(u, near[_where(u)]) for u in urls]


@contextlib.contextmanager
def reached(engine: Engine, checks: Sequence[HealthCheck]) -> Iterator[list[HealthCheck]]:
    """Health checks whose probes (HTTP or TCP) reach the engine's host (see reached_urls)."""
    urls = [c.url for c in checks if c.url]  # http:// and tcp:// probes alike
    with reached_urls(engine, urls) as near:
        moved = dict(zip(urls, near, strict=True))
        yield [replace(c, url=moved[c.url]) if c.url in moved else c for c in checks]
