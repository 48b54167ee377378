"""Shared test helpers.

With CI=true a test whose real service is missing fails; it never skips. On a
developer machine it skips with the reason, so the unit tier stays usable anywhere.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(service: str, available: bool, how: str = "") -> None:
    """Stop the test when `service` is not available: fail in CI, skip elsewhere."""
    if available:
        return
    message = f"{service} is not available" + (f": {how}" if how else "")
    if in_ci():
        pytest.fail(message + " (CI=true: a missing service is a failure)")
    pytest.skip(message)


CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "compose"


def corpus_files() -> list[Path]:
    """The awesome-compose corpus in ../shared, when this checkout has it beside it."""
    if not CORPUS.is_dir():
        return []
    return sorted(CORPUS.glob("*/compose.y*ml"))


def corpus_spec(compose: Path, folder: Path) -> Path:
    """Write the three-line spec for one corpus file into `folder`; return its path."""
    spec = folder / "envplane.yaml"
    spec.write_text(
        f"app: {compose.parent.name[:40]}\ndomain: example.com\ncompose: {compose}\n",
        encoding="utf-8",
    )
    return spec


def compose_v2() -> bool:
    """True when `docker compose` (v2) answers; `config` needs no engine."""
    try:
        done = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "v2" in done.stdout


def docker_engine() -> bool:
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def ensure_busybox_image(tag: str = "busybox:stable") -> str:
    """A busybox image built locally from busybox-static: no registry is needed."""
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    script = Path(__file__).resolve().parents[1] / "scripts" / "images.sh"
    if script.exists():
        subprocess.run(["bash", str(script), "busybox"], check=True, capture_output=True)
        return tag
    raise RuntimeError("scripts/images.sh is missing")


BUSYBOX_COMPOSE = """\
services:
  web:
    image: busybox:stable
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro", "webdata:/data"]
    init: true
volumes:
  webdata: {}
"""


def busybox_app(folder: Path, name: str, port_base: int) -> Path:
    """A one-service app (busybox httpd) that answers /health.txt; returns its folder."""
    (folder / "www").mkdir(parents=True, exist_ok=True)
    (folder / "www" / "health.txt").write_text("ok\n")
    (folder / "compose.yaml").write_text(BUSYBOX_COMPOSE)
    (folder / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    public: 8080\n    health: /health.txt\n"
        f"environments:\n  test:\n    port_base: {port_base}\n"
        "  staging:\n    data_path: /tmp/envplane-tests/{app}/staging\n"
    )
    return folder


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess[str]:
    """Run the envplane CLI as a user would, in a fresh process."""
    import sys

    return subprocess.run([sys.executable, "-m", "envplane", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


PLATFORM_PORTS = (25432, 26379, 27333)  # envplane platform's PostgreSQL, Redis, S3
# Blocks handed out to the running test: a block is free until the test publishes on it, so a
# second call must not hand out the first one again.
GIVEN_BLOCKS: set[int] = set()


def free_port_block(size: int = 200) -> int:
    """The start of `size` consecutive free TCP ports, so parallel tests never share one.

    Each pytest-xdist worker draws from its own range, so two workers can never pick
    overlapping blocks at the same moment; within a worker, tests run one at a time.
    The ranges lie below the kernel's ephemeral ports (32768 up), which client
    connections take at random: under a load test one of them would sit on a block's
    port by the time the test publishes it. Blocks never hold the platform's fixed ports.
    """
    import random
    import socket

    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    low = 20000 + (worker % 4) * 2500
    step = max(100, -(-size // 100) * 100)
    for _ in range(200):
        start = random.randrange(low, low + 2500 - step, step)
        if start in GIVEN_BLOCKS or any(start <= fixed < start + size for fixed in PLATFORM_PORTS):
            continue
        sockets = []
        try:
            for port in range(start, start + size):
                s = socket.socket()
                sockets.append(s)
                # As Docker's and Caddy's listeners do: a port whose old connections
                # wait in TIME_WAIT (after a load test) is free to listen on.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
            GIVEN_BLOCKS.add(start)
            return start
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free block of ports")


def remove_example_images(tag: str) -> None:
    """Drop the example's images built under a test's own IMAGE_TAG (layers stay cached)."""
    subprocess.run(["docker", "rmi", f"finance-report-backend:{tag}", f"finance-report-frontend:{tag}"],
                   capture_output=True)
