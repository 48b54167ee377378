"""Seed 002's "push to main releases to staging" through `envplane serve`'s webhook: a push
to the branch `webhook.release_on_push` names becomes the next version of that very commit,
released to staging as a job of the server and audited; other pushes release nothing.

GitHub cannot run here: a FAKE of its webhook sender signs `push` events with the shared
secret as GitHub does, and a bare git repository plays GitHub's copy of the repository. The
server, git, Docker and Compose are real.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envplane.secret import Secret
from envplane.webhook import signature
from tests.api_kit import Served, World, make_world, serving
from tests.support import (
    busybox_app,
    commit_file,
    docker_engine,
    ensure_busybox_image,
    free_port_block,
    git,
    git_remote_with_app,
    need,
    wait_for,
)

SECRET = "fake-github-shared-secret-for-push"
APP_DIR = "apps/web"
REPO = "acme/web"


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[World]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"sp{uuid.uuid4().hex[:6]}"

    def write_app(app: Path) -> None:
        busybox_app(app, name, free_port_block())
        (app / "www" / "index.html").write_text("main\n")
        with open(app / "envplane.yaml", "a") as spec:
            spec.write("webhook:\n  release_on_push: {branch: main, env: staging}\n")

    remote, author = git_remote_with_app(tmp_path, APP_DIR, write_app)
    git("clone", "-q", str(remote), str(tmp_path / "server"), cwd=tmp_path)
    world = make_world(tmp_path, tmp_path / "server" / APP_DIR, name, {"GITHUB_WEBHOOK_SECRET": SECRET})
    world.author = author  # type: ignore[attr-defined]
    try:
        yield world
    finally:
        world.cli("down", "staging", "--purge", "--yes")


def push_event(served: Served, app: str, ref: str, after: str, *, deleted: bool = False,
               secret: str = SECRET) -> httpx.Response:
    """What GitHub sends (a FAKE of it) after `git push`: a signed push event."""
    body = json.dumps({
        "ref": ref, "before": "0" * 40, "after": after, "created": False, "deleted": deleted, "forced": False,
        "pusher": {"name": "alice"}, "sender": {"login": "alice"}, "repository": {"full_name": REPO},
        "head_commit": None if deleted else {"id": after},
    }).encode()
    return httpx.post(f"{served.base}/hooks/github/{app}", content=body, timeout=30, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature(Secret(secret), body)})


def test_a_push_to_main_releases_that_commit_to_staging_as_an_audited_job(world: World) -> None:
    author: Path = world.author  # type: ignore[attr-defined]
    reader = world.auth("reader")
    sha = commit_file(author, f"{APP_DIR}/www/index.html", "pushed to main\n", "a change on main")
    git("push", "-q", "origin", "main", cwd=author)
    with serving(world) as served:
        api = httpx.Client(base_url=served.base, headers=reader, timeout=30)
        # A forged push is refused; a tag, another branch or a deleted main release nothing.
        assert push_event(served, world.app, "refs/heads/main", sha, secret="forged").status_code == 401
        for ref, after, deleted, why in (
                ("refs/tags/v9.9.9", sha, False, "a push to refs/tags/v9.9.9 releases nothing"),
                ("refs/heads/feature", sha, False, "a push to refs/heads/feature releases nothing"),
                ("refs/heads/main", "0" * 40, True, "branch main was deleted")):
            ignored = push_event(served, world.app, ref, after, deleted=deleted)
            assert (ignored.status_code, ignored.json()["accepted"], ignored.json()["reason"]) == \
                (202, "ignore", why)

        answer = push_event(served, world.app, "refs/heads/main", sha)
        assert (answer.status_code, answer.json()["accepted"], answer.json()["sha"]) == (202, "release", sha)

        def job() -> dict[str, Any] | None:
            jobs = api.get(f"/api/v1/jobs?app={world.app}").json()
            return next((j for j in jobs if j["kind"] == "release" and j["state"] != "running"), None)

        wait_for(lambda: job() is not None, 300, "the release of the push to end")
        done = job()
        assert done is not None and (done["state"], done["by"], done["env"], done["instance"]) == \
            ("ok", "github:alice", "staging", "staging"), done
        assert [j["kind"] for j in api.get(f"/api/v1/jobs?app={world.app}").json()] == ["release"]

        status = api.get(f"/api/v1/apps/{world.app}/status?env=staging").json()
        [port] = [p["published"] for s in status if s["instance"] == "staging" for p in s["ports"]]
        assert httpx.get(f"http://127.0.0.1:{port}/index.html").text == "pushed to main\n"  # that commit
        assert (world.app_dir / "www" / "index.html").read_text() == "main\n"  # the checkout as it was
        releases = api.get(f"/api/v1/apps/{world.app}/releases").json()
        assert [(r["version"], r["commit"], r["by"]) for r in releases] == [("v1.0.0", sha, "github:alice")]
        rows = api.get(f"/api/v1/apps/{world.app}/audit?limit=100").json()
        [pushed] = [r for r in rows if r["action"] == "push"]
        assert (pushed["actor"], pushed["outcome"], pushed["env"]) == ("github:alice", "ok", "staging")
        assert (pushed["detail"]["ref"], pushed["detail"]["branch"], pushed["detail"]["version"]) == \
            (sha, "main", "v1.0.0")
        assert {(r["action"], r["actor"]) for r in rows if r["action"] in ("release", "deploy")} == \
            {("release", "github:alice"), ("deploy", "github:alice")}

        # A pushed sha the remote does not have: the job fails, and the audit log says why.
        assert push_event(served, world.app, "refs/heads/main", "1" * 40).status_code == 202
        wait_for(lambda: any(j["state"] == "failed" for j in api.get(f"/api/v1/jobs?app={world.app}").json()),
                 120, "the release of the unknown commit to fail")
        rows = api.get(f"/api/v1/apps/{world.app}/audit?limit=100").json()
        [failed] = [r for r in rows if r["action"] == "push" and r["outcome"] == "failed"]
        assert failed["detail"]["ref"] == "1" * 40 and "cannot fetch commit 111111111111" in failed["detail"]["error"]
        assert [r["version"] for r in api.get(f"/api/v1/apps/{world.app}/releases").json()] == ["v1.0.0"]
