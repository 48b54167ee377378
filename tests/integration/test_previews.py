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
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane.secret import Secret
from envplane.webhook import signature
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need

SECRET = "fake-github-shared-secret"


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[Path]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    folder = busybox_app(tmp_path, f"pv{os.getpid() % 100000}", free_port_block())
    yield folder
    for args in (["preview", "down", "--pr", "11"], ["preview", "down", "--pr", "12"],
                 ["down", "staging", "--purge"]):
        cli(*args, cwd=folder, env={"DATA_PATH": ""})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_github_sends(port: int, action: str, pr: int, secret: str = SECRET) -> int:
    body = json.dumps({"action": action, "pull_request": {"number": pr, "head": {"sha": f"sha{pr}"}}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST", headers={
        "X-GitHub-Event": "pull_request", "X-Hub-Signature-256": signature(Secret(secret), body),
        "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def previews(folder: Path) -> dict[str, dict[str, object]]:
    done = cli("preview", "list", "--json", cwd=folder)
    return {row["pr"]: row for row in json.loads(done.stdout)}


def wait_for(check, seconds: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError("condition not met in time")


def test_webhook_drives_previews_and_gc_only_collects_closed_ones(app: Path) -> None:
    env = {"DATA_PATH": "", "GITHUB_WEBHOOK_SECRET": SECRET}
    assert cli("up", "staging", cwd=app, env={"DATA_PATH": ""}).returncode == 0
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "envplane", "webhook", "--listen", f"127.0.0.1:{port}"],
                              cwd=app, env={**os.environ, **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _answers(port), 30)
        assert fake_github_sends(port, "opened", 11) == 202
        assert fake_github_sends(port, "opened", 12) == 202
        assert fake_github_sends(port, "opened", 13, secret="forged") == 401
        wait_for(lambda: {"pr-11", "pr-12"} <= {k for k, v in previews(app).items() if v["status"] == "ok"})
        assert "pr-13" not in previews(app)
        assert fake_github_sends(port, "closed", 11) == 202
        wait_for(lambda: previews(app)["pr-11"]["closed_at"] is not None)
    finally:
        server.terminate()
        server.wait(timeout=30)
    audit = json.loads(cli("audit", "log", "--json", "-n", "200", cwd=app).stdout)
    assert any(r["action"] == "webhook" and r["outcome"] == "refused" for r in audit)

    dry = json.loads(cli("preview", "gc", "--ttl", "0s", "--dry-run", "--json", cwd=app).stdout)
    assert [p["instance"] for p in dry["previews"]] == ["pr-11"]
    assert previews(app)["pr-11"]["status"] == "ok"  # a dry run changes nothing

    done = json.loads(cli("preview", "gc", "--ttl", "0s", "--json", cwd=app, env=env).stdout)
    assert [(p["instance"], p["destroyed"]) for p in done["previews"]] == [("pr-11", True)]
    status = json.loads(cli("status", "--json", cwd=app).stdout)
    assert sorted({s["instance"] for s in status}) == ["pr-12", "staging"]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
