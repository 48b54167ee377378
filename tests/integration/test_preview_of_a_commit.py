"""`POST /apps/APP/previews` with a ref (pr-test.yml's `envplane remote preview up --ref
HEAD_SHA`) deploys that commit, fetched into the PR's own worktree as the webhook does —
not the server's checkout (which refused the ref, so the generated workflow always failed)."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane.errors import BackendError
from envplane.service import previews
from envplane.spec.load import load_project
from tests.support import (
    busybox_repo,
    cli,
    commit_file,
    git,
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
