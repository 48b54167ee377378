"""#14 e2e: `envplane serve` as its users meet it — a CI job bringing a preview up through the
API and watching its job live over Server-Sent Events, and GitHub's webhook served at
/hooks/github/{app} with the hardening of `envplane webhook`.

GitHub cannot run here: a FAKE of its webhook sender signs `pull_request` events with the
shared secret as GitHub does, and a bare git repository plays GitHub's copy of the repository.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envplane.secret import Secret
from envplane.webhook import MAX_BODY, signature
from tests.api_kit import Served, World, make_world, serving, sse
from tests.support import (
    busybox_repo,
    cli,
    commit_file,
    git,
    wait_for,
)

SECRET = "fake-github-shared-secret-for-serve"
APP_DIR = "apps/web"
REPO = "acme/web"


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[World]:
    name = f"sv{uuid.uuid4().hex[:6]}"
    app, author = busybox_repo(tmp_path, APP_DIR, name)
    world = make_world(tmp_path, app, name, {"GITHUB_WEBHOOK_SECRET": SECRET})
    world.author = author  # type: ignore[attr-defined]
    try:
        yield world
    finally:
        for pr in ("5", "6", "9"):
            world.cli("preview", "down", "--pr", pr)


def test_a_ci_token_brings_a_preview_up_and_watches_its_job_live(world: World) -> None:
    with serving(world) as served:
        api = httpx.Client(base_url=served.base, headers=world.auth("ci"), timeout=30)
        started = api.post(f"/api/v1/apps/{world.app}/previews", json={"pr": 6})
        assert started.status_code == 202, started.text
        job = started.json()
        arrivals: list[tuple[float, dict[str, Any]]] = []
        with api.stream("GET", f"/api/v1/jobs/{job['id']}/events", timeout=300) as stream:
            for event in sse(stream.iter_lines()):
                arrivals.append((time.time(), event))
        end = arrivals[-1][1]
        assert end["event"] == "end" and end["data"]["state"] == "ok", end
        # Live: the first step reached the client while the job still ran, not all at its end.
        first = next(at for at, e in arrivals if e["event"] == "step_started")
        assert first < end["data"]["finished_at"] - 0.5
        assert end["data"]["result"]["instance"] == "pr-6" and end["data"]["result"]["urls"]["web"]
        status = api.get(f"/api/v1/apps/{world.app}/status?env=test").json()
        [port] = [p["published"] for s in status if s["instance"] == "pr-6" for p in s["ports"]]
        assert httpx.get(f"http://127.0.0.1:{port}/health.txt").text == "ok\n"

        # A second up: the client goes away after the first event; the job goes on without it.
        again = api.post(f"/api/v1/apps/{world.app}/previews", json={"pr": 6}).json()
        with api.stream("GET", f"/api/v1/jobs/{again['id']}/events") as stream:
            next(sse(stream.iter_lines()))
        wait_for(lambda: api.get(f"/api/v1/jobs/{again['id']}").json()["state"] != "running", 300,
                 "the job to end")
        assert api.get(f"/api/v1/jobs/{again['id']}").json()["state"] == "ok"
        rows = api.get(f"/api/v1/apps/{world.app}/audit?limit=200").json()
        assert [r["actor"] for r in rows if r["action"] == "up"] == ["token:ci", "token:ci"]
        listed = api.get(f"/api/v1/apps/{world.app}/previews").json()
        assert [(p["pr"], p["status"]) for p in listed["previews"]] == [("pr-6", "ok")]

        # The CI runner's client (`envplane remote`) takes it down through the same API.
        runner = {**world.environ, "ENVPLANE_SERVER": served.base, "ENVPLANE_TOKEN": world.tokens["ci"]}
        done = cli("remote", "preview", "down", "--app", world.app, "--pr", "6", cwd=world.app_dir, env=runner)
        assert done.returncode == 0, done.stderr
        assert api.get(f"/api/v1/apps/{world.app}/status").json() == []
        refused = cli("remote", "preview", "up", "--app", world.app, "--pr", "6", cwd=world.app_dir,
                      env={**runner, "ENVPLANE_TOKEN": world.tokens["reader"]})
        assert refused.returncode == 1 and "may not deploy on env test" in refused.stderr


def deliver(served: Served, app: str, action: str, pr: int, sha: str, *, head_repo: str = REPO,
            author: str = "alice", delivery: str | None = None, secret: str = SECRET) -> httpx.Response:
    """What GitHub sends (a FAKE of it): a signed pull_request event."""
    body = json.dumps({
        "action": action, "number": pr, "sender": {"login": author}, "repository": {"full_name": REPO},
        "pull_request": {"number": pr, "user": {"login": author},
                         "head": {"sha": sha, "ref": "feature", "repo": {"full_name": head_repo}},
                         "base": {"sha": "0" * 40, "ref": "main", "repo": {"full_name": REPO}}},
    }).encode()
    return httpx.post(f"{served.base}/hooks/github/{app}", content=body, timeout=30, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature(Secret(secret), body)})


def push_pr(author: Path, pr: int, text: str, branch: str | None = "feature") -> str:
    git("checkout", "-q", "-B", branch or f"fork-{pr}", "main", cwd=author)
    sha = commit_file(author, f"{APP_DIR}/www/index.html", text, f"PR {pr}")
    if branch:
        git("push", "-q", "-f", "origin", f"HEAD:refs/heads/{branch}", cwd=author)
    git("push", "-q", "-f", "origin", f"HEAD:refs/pull/{pr}/head", cwd=author)
    git("checkout", "-q", "main", cwd=author)
    return sha


def test_github_s_webhook_deploys_a_pr_as_a_job_and_keeps_its_hardening(world: World) -> None:
    author: Path = world.author  # type: ignore[attr-defined]
    reader = world.auth("reader")
    with serving(world) as served:
        sha = push_pr(author, 5, "B\n")
        delivery = str(uuid.uuid4())
        answer = deliver(served, world.app, "opened", 5, sha, delivery=delivery)
        assert (answer.status_code, answer.json()["accepted"]) == (202, "up")
        assert deliver(served, world.app, "opened", 5, sha, delivery=delivery).json()["ignored"] == \
            "repeated delivery"

        def job() -> dict[str, Any] | None:
            jobs = httpx.get(f"{served.base}/api/v1/jobs?app={world.app}", headers=reader).json()
            return next((j for j in jobs if j["kind"] == "preview-up" and j["state"] != "running"), None)

        wait_for(lambda: job() is not None, 300, "the PR's deploy to end")
        done = job()
        assert done is not None and (done["state"], done["by"], done["instance"]) == \
            ("ok", "github:alice", "pr-5"), done
        status = httpx.get(f"{served.base}/api/v1/apps/{world.app}/status?env=test", headers=reader).json()
        [port] = [p["published"] for s in status if s["instance"] == "pr-5" for p in s["ports"]]
        assert httpx.get(f"http://127.0.0.1:{port}/index.html").text == "B\n"  # the PR's head

        # A fork's PR is refused, audited, and nothing of it is fetched.
        fork = push_pr(author, 9, "mallory was here\n", branch=None)
        refused = deliver(served, world.app, "opened", 9, fork, head_repo="mallory/web", author="mallory")
        assert refused.status_code == 403 and "comes from a fork" in refused.json()["error"]
        rows = httpx.get(f"{served.base}/api/v1/apps/{world.app}/audit?limit=500", headers=reader).json()
        assert [(r["actor"], r["outcome"]) for r in rows if r["instance"] == "pr-9"] == \
            [("github:mallory", "refused")]

        # A body over 1 MiB is refused before it is sent; forged requests write no audit row and
        # only a few log lines.
        host, port_text = served.base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port_text), timeout=15)
        connection.putrequest("POST", f"/hooks/github/{world.app}")
        connection.putheader("Content-Length", str(MAX_BODY + 1))
        connection.endheaders()
        assert connection.getresponse().status == 413
        connection.close()
        before = len(httpx.get(f"{served.base}/api/v1/apps/{world.app}/audit?limit=5000", headers=reader).json())
        for _ in range(50):
            assert deliver(served, world.app, "opened", 9, fork, secret="forged").status_code == 401
        after = httpx.get(f"{served.base}/api/v1/apps/{world.app}/audit?limit=5000", headers=reader).json()
        assert len(after) == before
        assert deliver(served, "nosuchapp", "opened", 9, fork).status_code == 404
        assert 1 <= len([line for line in served.lines() if "refused a request" in line]) <= 6

        # Closing marks it closed, as a job too.
        assert deliver(served, world.app, "closed", 5, sha).status_code == 202
        wait_for(lambda: any(j["kind"] == "preview-closed" and j["state"] == "ok" for j in httpx.get(
            f"{served.base}/api/v1/jobs", headers=reader).json()), 60, "PR 5 closed")
