"""Preview environments end to end: webhook from a fake GitHub, list, gc, isolation from staging.

GitHub itself cannot run here: the test plays GitHub (a fake sender, named as such), signing
pull_request events with the shared secret exactly as GitHub does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane.secret import Secret
from envplane.webhook import signature
from tests.support import (
    busybox_app,
    cli,
    docker_engine,
    ensure_busybox_image,
    free_port_block,
    git,
    git_remote_with_app,
    need,
)

SECRET = "fake-github-shared-secret"


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[Path]:
    """The app in a git repository: a bare one plays GitHub's copy, the webhook runs in a clone."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name, ports, staging_port = f"pv{os.getpid() % 100000}", free_port_block(), free_port_block(1)

    def write_app(folder: Path) -> None:
        spec = busybox_app(folder, name, ports, env_ports=False) / "envplane.yaml"
        # staging's own free port: the default (8080 + 10000) is shared with every other run
        spec.write_text(spec.read_text().replace("  staging:\n", f"  staging:\n    ports: {{web: {{8080: {staging_port}}}}}\n"))

    remote, _ = git_remote_with_app(tmp_path, ".", write_app)
    folder = tmp_path / "server"
    git("clone", "-q", str(remote), str(folder), cwd=tmp_path)
    yield folder
    for args in (["preview", "down", "--pr", "11"], ["preview", "down", "--pr", "12"],
                 ["down", "staging", "--purge", "--yes"]):
        cli(*args, cwd=folder, env={"DATA_PATH": ""})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_github_sends(port: int, action: str, pr: int, sha: str, secret: str = SECRET) -> int:
    repo = {"full_name": "acme/shop"}
    body = json.dumps({"action": action, "pull_request": {
        "number": pr, "user": {"login": "alice"}, "head": {"sha": sha, "repo": repo},
        "base": {"repo": repo}}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST", headers={
        "X-GitHub-Event": "pull_request", "X-Hub-Signature-256": signature(Secret(secret), body),
        "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def previews(folder: Path) -> dict[str, dict[str, object]]:
    done = cli("preview", "list", "--json", cwd=folder)
    return {row["pr"]: row for row in json.loads(done.stdout)}


def wait_for(check, seconds: float = 120, explain=lambda: "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"condition not met in {seconds:.0f} s\n{explain()}")


def _server_said(server: subprocess.Popen[str], folder: Path) -> str:
    """What a person would look at when previews do not come up: the server's output and the list."""
    server.terminate()
    try:
        out, err = server.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        out, err = server.communicate()
    listed = cli("preview", "list", "--json", cwd=folder)
    return f"webhook stdout:\n{out}\nwebhook stderr:\n{err}\npreview list:\n{listed.stdout}{listed.stderr}"


def test_webhook_drives_previews_and_gc_only_collects_closed_ones(app: Path) -> None:
    env = {"DATA_PATH": "", "GITHUB_WEBHOOK_SECRET": SECRET}
    assert cli("up", "staging", cwd=app, env={"DATA_PATH": ""}).returncode == 0
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "envplane", "webhook", "--listen", f"127.0.0.1:{port}"],
                              cwd=app, env={**os.environ, **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _answers(port), 30)
        head = git("rev-parse", "HEAD", cwd=app)  # the PRs' heads: the server's own commit will do
        assert fake_github_sends(port, "opened", 11, head) == 202
        assert fake_github_sends(port, "opened", 12, head) == 202
        assert fake_github_sends(port, "opened", 13, head, secret="forged") == 401
        wait_for(lambda: {"pr-11", "pr-12"} <= {k for k, v in previews(app).items() if v["status"] == "ok"},
                 explain=lambda: _server_said(server, app))
        assert "pr-13" not in previews(app)
        assert fake_github_sends(port, "closed", 11, head) == 202
        wait_for(lambda: previews(app)["pr-11"]["closed_at"] is not None)
    finally:
        server.terminate()
        server.wait(timeout=60)
    audit = json.loads(cli("audit", "log", "--json", "-n", "200", cwd=app).stdout)
    assert not any(r["outcome"] == "refused" for r in audit)  # a forged request is logged, not audited

    dry = json.loads(cli("preview", "gc", "--ttl", "0s", "--dry-run", "--json", cwd=app).stdout)
    assert [p["instance"] for p in dry["previews"]] == ["pr-11"]
    assert previews(app)["pr-11"]["status"] == "ok"  # a dry run changes nothing

    done = json.loads(cli("preview", "gc", "--ttl", "0s", "--json", cwd=app, env=env).stdout)
    assert [(p["instance"], p["destroyed"]) for p in done["previews"]] == [("pr-11", True)]
    status = json.loads(cli("status", "--json", cwd=app).stdout)
    assert sorted({s["instance"] for s in status}) == ["pr-12", "staging"]
    worktrees = app / ".envplane" / "webhook" / "worktrees"
    assert sorted(p.name for p in worktrees.iterdir()) == ["pr-12"]  # gc took PR 11's worktree too


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
