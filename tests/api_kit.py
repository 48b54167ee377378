"""What the API's tests share: a server home with one registered app (busybox httpd) and
tokens of every kind, the server as an ASGI app or as a real `envplane serve` process, and a
reader of Server-Sent Events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support import busybox_app, cli, free_port_block

# The tokens every test server has, by name: their scopes (and "expired", "revoked").
SCOPES = {"reader": ["read"], "logs": ["read:logs"], "ci": ["deploy:test"], "stager": ["deploy:staging"],
          "approver": ["approve:production"], "admin": ["admin"], "expired": ["admin"], "revoked": ["admin"]}


@dataclass
class World:
    app: str
    app_dir: Path
    environ: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[token]}"}

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return cli(*args, cwd=self.app_dir, env=self.environ, timeout=timeout)


def make_world(folder: Path, app_dir: Path | None = None, name: str | None = None,
               environ: dict[str, str] | None = None) -> World:
    """A server home in `folder` with one app registered — `app_dir` (named `name`), else a
    new busybox app — and a token per SCOPES entry."""
    from envplane.server import apps, auth, home

    name = name or f"api{uuid.uuid4().hex[:6]}"
    app_dir = app_dir or busybox_app(folder / "app", name, free_port_block())
    environ = {**os.environ, "ENVPLANE_SERVER_HOME": str(folder / "home"), "DATA_PATH": "", **(environ or {})}
    environ.pop("ENVPLANE_STATE_URL", None)
    store = home.open_server_store(environ)
    apps.add(store, app_dir)
    world = World(name, app_dir, environ)
    long_ago = datetime.now(UTC) - timedelta(days=30)
    for token, scopes in SCOPES.items():
        if token == "expired":
            _, raw = auth.create_token(store, token, scopes, timedelta(days=1), now=long_ago)
        else:
            _, raw = auth.create_token(store, token, scopes)
        world.tokens[token] = raw.reveal()
    auth.revoke_token(store, "revoked")
    return world


def sse(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Server-Sent Events as {"id", "event", "data"} (comments skipped)."""
    event: dict[str, Any] = {}
    for line in lines:
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            event[key] = json.loads(value.strip()) if key == "data" else value.strip()


@dataclass
class Served:
    base: str
    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()


@contextmanager
def serving(world: World, *args: str) -> Iterator[Served]:
    """A real `envplane serve` on a free port (its log in a file beside the app); stops it
    with SIGTERM."""
    port = free_port_block(1)
    log_file = world.app_dir.parent / f"serve-{port}.log"
    log = open(log_file, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "envplane", "serve", "--port", str(port), *args],
                               env=world.environ, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        # A cold start imports FastAPI, uvicorn and the MCP SDK: seconds of CPU, which a loaded
        # two-core machine stretches well past 30 s.
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    why = (f"exited with code {process.returncode}" if process.poll() is not None
                           else "not answering /healthz after 90 s")
                    raise AssertionError(f"envplane serve did not start ({why}): {log_file.read_text()}") from None
                time.sleep(0.1)
        yield Served(base, log_file)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
