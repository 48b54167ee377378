"""`POST /apps/APP/previews` with a ref (pr-test.yml's `envplane remote preview up --ref
HEAD_SHA`) deploys that commit, fetched into the PR's own worktree as the webhook does —
not the server's checkout (which refused the ref, so the generated workflow always failed)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envplane.errors import BackendError
from envplane.events import Event, StepFinished, StepStarted
from envplane.service import previews
from envplane.spec.load import load_project
from envplane.state.db import open_existing
from envplane.state.instances import deployments
from tests.support import (
    busybox_repo,
    cli,
    commit_file,
    git,
    one_while_another_runs,
)

APP_DIR = "apps/shop"
ENV = {"DATA_PATH": "", "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    app, author = busybox_repo(tmp_path, APP_DIR, f"pc{os.getpid() % 100000}", "main\n")
    yield app, author
    cli("preview", "down", "--pr", "7", cwd=app, env=ENV)


def served(app: Path, pr: int) -> str:
    rows = json.loads(cli("status", "--json", cwd=app, env=ENV).stdout)
    [port] = [p["published"] for row in rows if row["instance"] == f"pr-{pr}" for p in row["ports"]]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as response:
        return str(response.read().decode())


def test_a_preview_of_a_pr_s_commit_runs_that_commit(server: tuple[Path, Path]) -> None:
    app, author = server
    git("checkout", "-q", "-b", "feature", cwd=author)
    sha = commit_file(author, f"{APP_DIR}/www/index.html", "feature\n", "PR 7: a new page")
    git("push", "-q", "origin", "HEAD:refs/pull/7/head", cwd=author)
    project = load_project(app / "envplane.yaml", {**os.environ, **ENV})
    done = previews.up(project, 7, ref=sha, build=True)
    assert done.instance == "pr-7"
    assert served(app, 7) == "feature\n"  # the PR's commit, not the server's checkout of main
    assert (app / "www" / "index.html").read_text() == "main\n"  # the checkout is untouched
    with pytest.raises(BackendError, match="cannot fetch"):
        previews.up(project, 7, ref="0" * 40)


def test_two_commits_of_one_pr_at_once_each_deploy_their_own_files(server: tuple[Path, Path]) -> None:
    """Two previews of one PR asked for at the same moment (two pushes, two CI runs): the
    second commit is checked out in the PR's worktree only once the first is deployed, so
    each deployment serves the files of the sha it records (#9: it used to check out before
    taking the instance's lock, and the first ran the second's files under its own sha)."""
    app, author = server
    git("checkout", "-q", "-b", "feature", cwd=author)
    first = commit_file(author, f"{APP_DIR}/www/index.html", "first\n", "PR 7: first")
    second = commit_file(author, f"{APP_DIR}/www/index.html", "second\n", "PR 7: second")
    git("push", "-q", "origin", "HEAD:refs/pull/7/head", cwd=author)
    project = load_project(app / "envplane.yaml", {**os.environ, **ENV})
    worktree = app / ".envplane" / "webhook" / "worktrees" / "pr-7"
    first_deploying, served_by = threading.Event(), {}

    def reporter(sha: str) -> Callable[[Event], None]:
        def report(event: Event) -> None:
            if isinstance(event, StepStarted) and sha == first and not first_deploying.is_set():
                first_deploying.set()
                # Hold the first deploy open for a while: long enough for the second request
                # to check its commit out, were it not waiting for the instance's lock.
                deadline = time.monotonic() + 6
                while time.monotonic() < deadline and git("rev-parse", "HEAD", cwd=worktree) != second:
                    time.sleep(0.2)
            if isinstance(event, StepFinished) and event.step == "health" and event.state == "ok":
                served_by[sha] = served(app, 7)  # still under its lock: what this deploy runs
        return report

    one_while_another_runs(lambda: previews.up(project, 7, ref=first, build=True, report=reporter(first)),
                           lambda: previews.up(project, 7, ref=second, build=True, report=reporter(second)),
                           first_deploying, "the first preview's deploy")
    store = open_existing(app, None)
    assert store is not None
    recorded = [d.ref for d in deployments(store, project.app, "test", "pr-7") if d.status == "ok"]
    store.close()
    assert sorted(recorded) == sorted([first, second])
    assert served_by == {first: "first\n", second: "second\n"}  # each ran the sha it recorded
    assert served(app, 7) == "second\n"
