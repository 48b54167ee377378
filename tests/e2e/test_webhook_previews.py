"""`envplane webhook` deploys what the PR says, not what the server has checked out (#9.5, #9.16).

GitHub cannot run here. `FakeGitHub` plays it: it signs `pull_request` events with the shared
secret exactly as GitHub does, and a bare git repository on disk plays GitHub's copy of the
repository (branches and `refs/pull/N/head`). The webhook server runs in a clone of it that
stays at commit A, as a server's checkout does; the PR's commits change the page the app's
busybox httpd serves.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from envplane.secret import Secret
from envplane.webhook import MAX_BODY, signature
from tests.support import (
    busybox_repo,
    cli,
    commit_file,
    free_port_block,
    git,
    wait_for,
)

SECRET = "fake-github-shared-secret"
APP_DIR = "apps/web"
REPO = "acme/web"


@dataclass
class FakeGitHub:
    """A fake of GitHub's webhook sender (GitHub itself cannot run here)."""

    port: int
    secret: str = SECRET
    sent: list[str] = field(default_factory=list)

    def pull_request(self, action: str, pr: int, sha: str, head_repo: str = REPO, author: str = "alice",
                     delivery: str | None = None, secret: str | None = None) -> tuple[int, dict[str, Any]]:
        body = json.dumps({
            "action": action, "number": pr, "sender": {"login": author},
            "repository": {"full_name": REPO},
            "pull_request": {"number": pr, "state": "closed" if action == "closed" else "open",
                             "user": {"login": author},
                             "head": {"sha": sha, "ref": "feature", "repo": {"full_name": head_repo}},
                             "base": {"sha": "0" * 40, "ref": "main", "repo": {"full_name": REPO}}},
        }).encode()
        delivery = delivery or str(uuid.uuid4())
        self.sent.append(delivery)
        return self.post(body, {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery,
                                "X-Hub-Signature-256": signature(Secret(secret or self.secret), body)})

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/", data=body, method="POST",
                                         headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


@dataclass
class Server:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    name = f"wh{os.getpid() % 100000}"
    app, author = busybox_repo(tmp_path, APP_DIR, name)
    port = free_port_block(1)
    process = subprocess.Popen(
        [sys.executable, "-m", "envplane", "--debug", "webhook", "--listen", f"127.0.0.1:{port}", "--workers", "2"],
        cwd=app, env={**os.environ, "GITHUB_WEBHOOK_SECRET": SECRET, "DATA_PATH": ""},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    server = Server(process)
    threading.Thread(target=server.read, daemon=True).start()
    try:
        wait_for(lambda: server.saw("webhook: serving on"), 60, "the webhook server to listen")
        yield {"app": app, "author": author, "server": server, "github": FakeGitHub(port), "name": name}
    finally:
        process.terminate()
        process.wait(timeout=120)
        print("webhook server's log:", *server.lines, sep="\n")  # pytest shows it when a test fails
        for pr in ("5", "9"):
            cli("preview", "down", "--pr", pr, cwd=app, env={"DATA_PATH": ""})


def push_pr(author: Path, pr: int, commits: list[tuple[str, str]], branch: str | None = "feature") -> list[str]:
    """Commit on top of main and publish as GitHub does: the branch (same repo) and refs/pull/N/head."""
    git("checkout", "-q", "-B", branch or f"fork-{pr}", "main", cwd=author)
    shas = [commit_file(author, f"{APP_DIR}/{path}", text, f"PR {pr}: {path}") for path, text in commits]
    if branch:
        git("push", "-q", "-f", "origin", f"HEAD:refs/heads/{branch}", cwd=author)
    git("push", "-q", "-f", "origin", f"HEAD:refs/pull/{pr}/head", cwd=author)
    git("checkout", "-q", "main", cwd=author)
    return shas


def previews(app: Path) -> dict[str, dict[str, Any]]:
    done = cli("preview", "list", "--json", cwd=app)
    return {row["pr"]: row for row in json.loads(done.stdout)}


def deployed(app: Path, pr: int, sha: str) -> bool:
    row = previews(app).get(f"pr-{pr}")
    return row is not None and row["ref"] == sha and row["status"] == "ok"


def served(app: Path, pr: int, page: str = "index.html") -> str:
    status = json.loads(cli("status", "--json", cwd=app).stdout)
    [port] = [p["published"] for c in status if c["instance"] == f"pr-{pr}" for p in c["ports"]]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{page}", timeout=10) as response:
        return response.read().decode()


def audit_rows(app: Path) -> list[dict[str, Any]]:
    return json.loads(cli("audit", "log", "--json", "-n", "5000", cwd=app).stdout)  # type: ignore[no-any-return]


def test_a_preview_serves_the_pr_s_head_not_the_server_s_checkout(world: dict[str, Any]) -> None:
    app, author, server, github = world["app"], world["author"], world["server"], world["github"]
    [b] = push_pr(author, 5, [("www/index.html", "B\n")])

    status, answer = github.pull_request("opened", 5, b)
    assert (status, answer["accepted"]) == (202, "up")
    wait_for(lambda: deployed(app, 5, b), what="PR 5 at B")
    assert served(app, 5) == "B\n"
    assert (app / "www" / "index.html").read_text() == "A\n"  # the server's checkout is untouched
    [up] = [r for r in audit_rows(app) if r["action"] == "up" and r["instance"] == "pr-5"]
    assert (up["actor"], up["outcome"], up["detail"]["ref"]) == ("github:alice", "ok", b)

    # GitHub delivers the same event again: it is taken once.
    status, answer = github.pull_request("opened", 5, b, delivery=github.sent[-1])
    assert (status, answer.get("ignored")) == (200, "repeated delivery")

    # Three pushes: the second is still waiting when the third comes, so it is never deployed.
    slow, b2, b3 = push_pr(author, 5, [
        ("envplane.yaml", (app / "envplane.yaml").read_text()
         + "hooks:\n  pre_deploy: {service: web, command: 'sleep 3'}\n"),
        ("www/index.html", "B2\n"), ("www/index.html", "B3\n")])
    assert github.pull_request("synchronize", 5, slow)[0] == 202
    wait_for(lambda: server.saw(f"PR 5 {slow[:12]}: deploying"), 60, "the first push to start")
    assert github.pull_request("synchronize", 5, b2)[0] == 202
    assert github.pull_request("synchronize", 5, b3)[0] == 202
    wait_for(lambda: deployed(app, 5, b3), what="PR 5 at B3")
    assert served(app, 5) == "B3\n"
    assert server.saw(f"PR 5 {b2[:12]}: superseded by {b3[:12]} before it started")
    refs = [r["detail"].get("ref") for r in audit_rows(app) if r["action"] == "up" and r["instance"] == "pr-5"]
    assert b2 not in refs and refs.count(slow) == 1 and refs.count(b3) == 1

    # Closing keeps the preview until gc; taking it down removes its worktree.
    assert github.pull_request("closed", 5, b3)[0] == 202
    wait_for(lambda: previews(app)["pr-5"]["closed_at"] is not None, 60, "PR 5 closed")
    worktree = app / ".envplane" / "webhook" / "worktrees" / "pr-5"
    assert worktree.is_dir()
    assert cli("preview", "down", "--pr", "5", cwd=app, env={"DATA_PATH": ""}).returncode == 0
    assert not worktree.exists()


def test_fork_prs_big_bodies_and_forged_requests_are_refused(world: dict[str, Any]) -> None:
    app, author, server, github = world["app"], world["author"], world["server"], world["github"]
    [c] = push_pr(author, 9, [("www/index.html", "mallory was here\n")], branch=None)

    status, answer = github.pull_request("opened", 9, c, head_repo="mallory/web", author="mallory")
    assert status == 403 and "comes from a fork (mallory/web)" in answer["error"]
    refused = [r for r in audit_rows(app) if r["action"] == "webhook" and r["instance"] == "pr-9"]
    assert [(r["outcome"], r["actor"]) for r in refused] == [("refused", "github:mallory")]
    assert "pr-9" not in previews(app)
    in_server = subprocess.run(["git", "cat-file", "-e", f"{c}^{{commit}}"], cwd=app, capture_output=True)
    assert in_server.returncode != 0  # not even fetched

    connection = http.client.HTTPConnection("127.0.0.1", github.port, timeout=15)
    connection.putrequest("POST", "/")
    connection.putheader("Content-Length", str(MAX_BODY + 1))
    connection.endheaders()  # the body never needs to be sent
    assert connection.getresponse().status == 413
    connection.close()

    before = len(audit_rows(app))
    for _ in range(100):
        assert github.pull_request("opened", 9, c, secret="forged")[0] == 401
    assert len(audit_rows(app)) == before
    refusals = [line for line in server.lines if "refused a request" in line]
    assert 1 <= len(refusals) <= 6, refusals
