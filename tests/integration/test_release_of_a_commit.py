"""`release --ref SHA` through the API and MCP: any commit of the app's git remote becomes the
next version, fetched into a worktree of the env's own under its lock (as a preview of a
commit is), while the server's checkout stays on main. A bare git repository plays GitHub's
copy of the repository; the server is a real `envplane serve`, Docker and Compose are real."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envplane import actions
from envplane.events import Event, StepFinished, StepStarted
from envplane.service import releases
from tests.api_kit import World, make_world, serving
from tests.integration.test_mcp_deploy_branch import call
from tests.support import busybox_repo, commit_file, git, one_while_another_runs, wait_for

APP_DIR = "apps/web"


@pytest.fixture()
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("DATA_PATH", "")  # the MCP tools run in this process
    name = f"rc{uuid.uuid4().hex[:6]}"
    app, author = busybox_repo(tmp_path, APP_DIR, name, "main\n")
    world = make_world(tmp_path, app, name)
    world.author = author  # type: ignore[attr-defined]
    try:
        yield world
    finally:
        world.cli("down", "staging", "--purge", "--yes")


def page(api: httpx.Client, app: str) -> str:
    status = api.get(f"/api/v1/apps/{app}/status?env=staging").json()
    [port] = [p["published"] for s in status if s["instance"] == "staging" for p in s["ports"]]
    return httpx.get(f"http://127.0.0.1:{port}/index.html").text


def test_any_commit_of_the_remote_is_released_without_touching_the_checkout(world: World) -> None:
    author: Path = world.author  # type: ignore[attr-defined]
    git("checkout", "-q", "-b", "feature", cwd=author)
    first = commit_file(author, f"{APP_DIR}/www/index.html", "first\n", "first page")
    git("push", "-q", "origin", "feature", cwd=author)
    with serving(world) as served:
        api = httpx.Client(base_url=served.base, headers=world.auth("stager"), timeout=30)
        started = api.post(f"/api/v1/apps/{world.app}/releases", json={"env": "staging", "ref": first})
        assert started.status_code == 202, started.text
        job = started.json()["id"]
        wait_for(lambda: api.get(f"/api/v1/jobs/{job}").json()["state"] != "running", 300, "the release")
        ended: dict[str, Any] = api.get(f"/api/v1/jobs/{job}").json()
        assert ended["state"] == "ok", ended
        assert (ended["result"]["version"], ended["result"]["commit"]) == ("v1.0.0", first)
        assert page(api, world.app) == "first\n"
        assert (world.app_dir / "www" / "index.html").read_text() == "main\n"  # the checkout is untouched
        assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=world.app_dir) == "main"

        # MCP's release tool takes a commit the same way: the next version, of that commit.
        second = commit_file(author, f"{APP_DIR}/www/index.html", "second\n", "second page")
        git("push", "-q", "origin", "feature", cwd=author)
        project = actions.open_project(world.app_dir, world.environ)
        done = call(project, {"deploy:staging"}, "release", {"ref": second})
        assert not done.is_error, done.content
        assert (done.structured_content["version"], done.structured_content["commit"]) == ("v1.0.1", second)
        assert page(api, world.app) == "second\n"
        missing = call(project, {"deploy:staging"}, "release", {"ref": "0" * 40})
        assert missing.is_error and "cannot fetch commit 000000000000" in missing.content[0].text

        listed = api.get(f"/api/v1/apps/{world.app}/releases").json()
        assert [(r["version"], r["commit"], r["ref"]) for r in listed] == [("v1.0.1", second, second),
                                                                           ("v1.0.0", first, first)]


def test_two_commits_released_at_once_each_run_the_files_they_record(world: World) -> None:
    """Two `release --ref` of different commits to staging at the same moment (two pushes to
    main): the second is checked out in staging's worktree only once the first is deployed,
    so each version serves the files of the commit it records (lock, check out, deploy)."""
    author: Path = world.author  # type: ignore[attr-defined]
    first = commit_file(author, f"{APP_DIR}/www/index.html", "first\n", "first page")
    second = commit_file(author, f"{APP_DIR}/www/index.html", "second\n", "second page")
    git("push", "-q", "origin", "HEAD:refs/heads/feature", cwd=author)
    project = actions.open_project(world.app_dir, world.environ)
    worktree = world.app_dir / ".envplane" / "webhook" / "worktrees" / "env-staging"
    port = int(project.envs["staging"].ports["web"][8080])
    first_building, served_by = threading.Event(), {}

    def reporter(sha: str) -> Callable[[Event], None]:
        def report(event: Event) -> None:
            if isinstance(event, StepStarted) and sha == first and not first_building.is_set():
                first_building.set()
                # Hold the first release open long enough for the second to check its commit
                # out, were it not waiting for staging's lock.
                deadline = time.monotonic() + 6
                while time.monotonic() < deadline and git("rev-parse", "HEAD", cwd=worktree) != second:
                    time.sleep(0.2)
            if isinstance(event, StepFinished) and event.step == "health" and event.state == "ok":
                served_by[sha] = httpx.get(f"http://127.0.0.1:{port}/index.html").text  # under its lock
        return report

    one_while_another_runs(lambda: releases.create(project, "staging", ref=first, report=reporter(first)),
                           lambda: releases.create(project, "staging", ref=second, report=reporter(second)),
                           first_building, "the first release")
    assert served_by == {first: "first\n", second: "second\n"}
    recorded = {r.release.commit for r in releases.list_releases(project).releases}
    assert recorded == {first, second}


def test_two_releases_at_once_take_two_versions(world: World) -> None:
    """Two `release staging` of the checkout at the same moment (two people, or a push and a
    person): each gets a version of its own, and each version's tag names the images it
    recorded (the second build must not re-tag the first's number)."""
    import subprocess

    project = actions.open_project(world.app_dir, world.environ)
    first_building = threading.Event()
    made: list[releases.Released] = []

    def report(event: Event) -> None:
        if isinstance(event, StepStarted) and event.step == "build" and not first_building.is_set():
            first_building.set()
            time.sleep(4)  # the second release numbers itself while this one builds

    one_while_another_runs(lambda: made.append(releases.create(project, "staging", report=report)),
                           lambda: made.append(releases.create(project, "staging")),
                           first_building, "the first release's build")
    assert sorted(r.version for r in made) == ["v1.0.0", "v1.0.1"]
    for done in made:
        for image in (i for i in done.images.values() if i.get("built")):
            tagged = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}",
                                     f"{image['ref'].rsplit(':', 1)[0]}:{done.version}"],
                                    capture_output=True, text=True, check=True).stdout.strip()
            assert tagged == image["id"], (done.version, image)
