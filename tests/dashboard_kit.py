"""A real server with the dashboard and a real running instance, for the dashboard's tests.

The busybox app (tests.support.busybox_app) runs its staging instance on the Docker engine;
`envplane serve` (on a free port of the test's block) has it registered and three people,
alice, bob and carol, who log in with passwords.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from envplane.state.db import Store
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, git, need

PASSWORDS = {"alice": "alice-Pa55word-1", "bob": "bob-Pa55word-2", "carol": "carol-Pa55word-3"}
# The web service says its secret once at start (a careless app does) and ticks every half
# second, so a page can watch its log move.
COMPOSE = """\
services:
  web:
    image: busybox:stable
    command: ["sh", "-c", "echo \\"starting with key $$API_KEY\\"; (i=0; while true; do i=$$((i+1)); echo \\"tick $$i\\"; sleep 0.5; done) & exec httpd -f -p 8080 -h /www"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro"]
    init: true
"""


@dataclass
class Served:
    url: str
    folder: Path  # the app's folder
    app: str
    home: Path  # the server's home
    env: dict[str, str]  # the environment the server and the CLI run with
    secret: str  # the value of the app's secret API_KEY on staging
    store: Store  # the server's

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=60)

    def login(self, client: httpx.Client, user: str) -> None:
        form = client.get("/login")
        token = csrf_of(form.text)
        done = client.post("/login", data={"user": user, "password": PASSWORDS[user], "csrf": token,
                                           "next": "/"})
        assert done.status_code == 303, done.text


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def running_app(tmp_path: Path) -> tuple[Path, str, dict[str, str], str]:
    """The busybox app in a git repository, released to staging (v1.0.1, by `ops` on the
    CLI); production takes a version only through its gates, approval among them, and its
    approvers file lets the server sign for alice and bob. Returns (folder, app name,
    environment, the value of its secret API_KEY)."""
    from envplane.server import approvals

    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"dash{uuid.uuid4().hex[:6]}"
    folder = busybox_app(tmp_path / "app", name, free_port_block())
    (folder / "compose.yaml").write_text(COMPOSE)
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text()
                    .replace("    health: /health.txt\n", "    health: /health.txt\n    secrets: [API_KEY]\n")
                    .replace("/tmp/envplane-tests/{app}/staging", f"{tmp_path}/data/{{app}}/staging")
                    .replace("  production:\n", "  production:\n    strategy: recreate\n"
                             f"    data_path: {tmp_path}/data/{{app}}/production\n"
                             # the 200 ms default is unit-tested; a busy host must not fail on it
                             "    gates: {p95_ms: 1000}\n")
                    + "approvers: approvers\n")
    env = {"DATA_PATH": "", "ENVPLANE_SERVER_HOME": str(tmp_path / "server"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"),  # the audit and secret keys
           "ENVPLANE_HOME": str(tmp_path / "envplane-home"), "ENVPLANE_USER": "ops",
           # the server's scheduler runs only the light job here (no backups nor drills of the test app)
           "ENVPLANE_SCHEDULE_BACKUP": "off", "ENVPLANE_SCHEDULE_DRILL": "off"}
    (folder / "approvers").write_text("".join(approvals.approver_line(user, env) + "\n"
                                              for user in ("alice", "bob")))
    (folder / ".gitignore").write_text(".envplane/\n")
    git("init", "-q", "-b", "main", cwd=folder)
    git("add", "-A", cwd=folder)
    git("commit", "-qm", "the app", cwd=folder)
    git("tag", "v1.0.0", cwd=folder)
    secret = f"s3cret-{uuid.uuid4().hex}"
    for where in ("staging", "production"):
        done = subprocess.run([sys.executable, "-m", "envplane", "secrets", "set", where, "API_KEY", "--service",
                               "web"], cwd=folder, env={**os.environ, **env}, input=secret, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    done = cli("release", "staging", cwd=folder, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, name, env, secret


def stop_app(folder: Path, env: dict[str, str]) -> None:
    for where in ("production", "staging"):
        cli("down", where, "--purge", "--yes", cwd=folder, env=env)


def envplane(*args: str, cwd: Path, env: dict[str, str], input: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "envplane", *args], cwd=cwd, env={**os.environ, **env},
                          input=input, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"envplane {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextmanager
def serve(tmp_path: Path) -> Iterator[Served]:
    """`envplane serve` on a free port, with the app registered and alice (who may do
    anything), bob (who may read, read logs and approve production) and carol (who may read)
    as its users, all made with the CLI as an operator makes them."""
    from envplane.server.home import open_server_store

    folder, name, env, secret = running_app(tmp_path)
    try:
        for user, scopes in (("alice", ["admin"]), ("bob", ["read", "read:logs", "approve:production"]),
                             ("carol", ["read"])):
            envplane("users", "add", user, *(f"--scope={s}" for s in scopes), cwd=tmp_path, env=env,
                     input=PASSWORDS[user] + "\n")
        envplane("apps", "add", str(folder), cwd=tmp_path, env=env)
        port = free_port_block(1)
        log = (tmp_path / "serve.log").open("w")
        process = subprocess.Popen([sys.executable, "-m", "envplane", "serve", "--port", str(port)],
                                   cwd=tmp_path, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "envplane serve did not answer /healthz"
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        store = open_server_store(env)
        try:
            yield Served(url, folder, name, tmp_path / "server", env, secret, store)
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
            store.close()
    finally:
        stop_app(folder, env)
