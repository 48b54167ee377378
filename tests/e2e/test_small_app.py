"""The first hour with an app of one's own (issue 10): one web service and a worker, made from
scratch, taken through `init`, `envs`, `plan`, `up staging`, `status`, `logs`, `preview
up/down`, `verify` and `down --purge`, checking what a user reads: URLs that answer, a
healthy status, log lines, a clean verify, and nothing left behind.

The app is two busybox containers (`httpd` and a loop); its only line not written by hand
or by `init` is the `environments:` block that gives staging and the PRs ports of their
own, so this test runs beside others on one host.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import cli, docker_engine, ensure_busybox_image, free_port_block, need

COMPOSE = """\
services:
  web:
    image: busybox:stable
    command: ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro"]
    init: true
  worker:
    image: busybox:stable
    command: ["sh", "-c", "while true; do echo tick; sleep 1; done"]
    init: true
"""


@dataclass
class SmallApp:
    folder: Path
    name: str
    port: int  # a free block of 40: staging's web port, docker's next to it, PR 5's at +20

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
        return cli(*args, cwd=self.folder, env={"DATA_PATH": "", **(env or {})}, timeout=timeout)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*args)
        assert done.returncode == 0, f"envplane {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    @property
    def spec(self) -> Path:
        return self.folder / "envplane.yaml"

    def labelled(self) -> list[str]:
        """Every container, network and volume of this app the engine knows."""
        found = []
        for kind in ("container", "network", "volume"):
            listed = subprocess.run(
                ["docker", kind, "ls", *(["-a"] if kind == "container" else []), "--filter",
                 f"label=envplane.app={self.name}", "--format",
                 "{{.Names}}" if kind == "container" else "{{.Name}}"],
                capture_output=True, text=True, check=True).stdout.split()
            found += [f"{kind} {n}" for n in listed]
        return found


def fetch(url: str) -> tuple[int, str]:
    """GET a printed URL as curl does: a `*.localhost` name is this host."""
    parts = urllib.parse.urlsplit(url)
    headers = {}
    if parts.hostname and parts.hostname.endswith(".localhost"):
        headers["Host"] = parts.netloc
        url = parts._replace(netloc=f"127.0.0.1:{parts.port or 80}").geturl()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def urls_in(output: str) -> dict[str, str]:
    """`  web: http://…` lines, as `up` prints where each public service answers."""
    found = {}
    for line in output.splitlines():
        name, sep, url = line.strip().partition(": ")
        if sep and url.startswith("http"):
            found[name] = url
    return found


@pytest.fixture()
def small(tmp_path: Path) -> Iterator[SmallApp]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    folder = tmp_path / "myapp"
    (folder / "www").mkdir(parents=True)
    (folder / "www" / "index.html").write_text("<h1>hello from myapp</h1>\n")
    (folder / "compose.yaml").write_text(COMPOSE)
    block = free_port_block(40)
    app = SmallApp(folder, f"my{os.getpid() % 10000}{uuid.uuid4().hex[:4]}", block)
    yield app
    for args in (["preview", "down", "--pr", "5"], ["down", "staging", "--purge", "--yes"],
                 ["down", "staging", "--purge"], ["down", "docker", "--purge"]):
        app.run(*args)


def init(app: SmallApp) -> None:
    done = app.ok("init", "--compose", "compose.yaml", "--app", app.name, "--domain", "example.com")
    said = done.stdout + done.stderr
    assert "public on container port 8080" in said
    # the one hand edit: ports of their own, as a team sharing a host would give them
    app.spec.write_text(app.spec.read_text() + (
        "environments:\n"
        f"  staging: {{ports: {{web: {{8080: {app.port}}}}}}}\n"
        f"  docker: {{ports: {{web: {{8080: {app.port + 1}}}}}}}\n"
        f"  test: {{port_base: {app.port - 20}}}\n"))  # PR N's ports start at port_base + (N - 1) * 10


def test_a_small_app_goes_through_the_first_hour_with_no_surprise(small: SmallApp) -> None:
    app = small
    init(app)

    envs = app.ok("envs")
    assert f"{app.name}-staging.example.com" in envs.stdout and "staging" in envs.stdout
    plan = app.ok("plan", "staging")
    assert f"{app.name}-web-staging" in plan.stdout and f"{app.name}-worker-staging" in plan.stdout
    assert "change(s)" in plan.stdout
    assert app.labelled() == []  # plan changes nothing

    up = app.ok("up", "staging")
    assert f"{app.name} staging is up" in up.stdout
    urls = urls_in(up.stdout)
    assert list(urls) == ["web"], up.stdout
    assert fetch(urls["web"]) == (200, "<h1>hello from myapp</h1>\n")
    assert fetch(f"http://127.0.0.1:{app.port}/") == (200, "<h1>hello from myapp</h1>\n")  # its own port

    status = json.loads(app.ok("status", "staging", "--json").stdout)
    rows = {row["service"]: row for row in _rows(status)}
    assert set(rows) == {"web", "worker"}
    assert all(r["state"] == "running" for r in rows.values()), rows
    assert rows["web"]["health"] in ("healthy", None), rows  # probed over HTTP: no Docker healthcheck
    shown = app.ok("status", "staging").stdout
    assert f"{app.name}-web-staging" in shown and "running" in shown

    logs = app.ok("logs", "staging", "worker")
    assert "tick" in logs.stdout + logs.stderr
    web_logs = app.ok("logs", "staging", "web")
    assert "GET /" in web_logs.stdout + web_logs.stderr or "response:200" in web_logs.stdout + web_logs.stderr

    preview = app.ok("preview", "up", "--pr", "5")
    preview_urls = urls_in(preview.stdout)
    assert fetch(preview_urls["web"]) == (200, "<h1>hello from myapp</h1>\n")
    assert any("-pr-5" in name for name in app.labelled())

    verified = app.run("verify", "--json")
    report = json.loads(verified.stdout)
    mine = [v for v in report.get("violations", []) if app.name in json.dumps(v)]
    assert mine == [], mine  # the host may hold other apps; none of ours is a violation

    gone = app.ok("preview", "down", "--pr", "5")
    assert "pr-5" in gone.stdout
    assert not [n for n in app.labelled() if "-pr-5" in n]
    assert fetch(urls["web"])[0] == 200  # staging untouched by the preview's removal

    purged = app.ok("down", "staging", "--purge", "--yes")
    assert "purged" in purged.stdout
    assert app.labelled() == []
    assert not Path(f"/data/{app.name}/staging").exists()
    listed = json.loads(app.ok("status", "--json").stdout)
    assert _rows(listed) == []


def _rows(status: object) -> list[dict[str, object]]:
    """The service rows of `status --json`, whatever its nesting (instances, then services)."""
    if isinstance(status, dict):
        if "service" in status and "state" in status:
            return [status]
        return [r for v in status.values() for r in _rows(v)]
    if isinstance(status, list):
        return [r for v in status for r in _rows(v)]
    return []
