"""PR worktrees against real git (#9.5): a bare repository plays GitHub's copy of the repo,
and the webhook server's checkout is a clone of it that stays at commit A."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane.checkouts import WORKTREES, Checkouts, head_project
from envplane.errors import BackendError, UsageError
from envplane.spec.load import load_project
from tests.support import commit_file, git, git_remote_with_app

APP_DIR = "apps/shop"


def write_app(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n")
    (folder / "envplane.yaml").write_text("app: shop\ndomain: example.com\ncompose: compose.yaml\n")
    (folder / "www").mkdir()
    (folder / "www" / "index.html").write_text("A\n")


@pytest.fixture()
def repos(tmp_path: Path) -> tuple[Path, Path, Path]:
    remote, author = git_remote_with_app(tmp_path, APP_DIR, write_app)
    server = tmp_path / "server"
    git("clone", "-q", str(remote), str(server), cwd=tmp_path)
    return remote, author, server


def pr_head(author: Path, pr: int, text: str, branch: str | None = None) -> str:
    """Commit on a PR branch and publish it as GitHub does: refs/pull/N/head (and the branch)."""
    git("checkout", "-q", "-B", branch or f"pr-{pr}", "main", cwd=author)
    sha = commit_file(author, f"{APP_DIR}/www/index.html", text, f"PR {pr}: {text.strip()}")
    git("push", "-q", "-f", "origin", f"HEAD:refs/pull/{pr}/head", cwd=author)
    if branch:
        git("push", "-q", "-f", "origin", f"HEAD:refs/heads/{branch}", cwd=author)
    git("checkout", "-q", "main", cwd=author)
    return sha


def trees(server: Path, limit: int = 10) -> Checkouts:
    return Checkouts.of(load_project(server / APP_DIR / "envplane.yaml", {}), limit=limit)


def test_a_pr_head_is_checked_out_beside_the_server_s_unchanged_checkout(repos: tuple[Path, Path, Path]) -> None:
    _, author, server = repos
    sha = pr_head(author, 5, "B\n", branch="feature")
    spec = trees(server).prepare(5, sha, lambda: [])
    assert spec == server / APP_DIR / WORKTREES / "pr-5" / APP_DIR / "envplane.yaml"
    assert (spec.parent / "www" / "index.html").read_text() == "B\n"
    assert (server / APP_DIR / "www" / "index.html").read_text() == "A\n"  # the server's stays at A
    assert git("status", "--porcelain", "--untracked-files=no", cwd=server) == ""
    head = head_project(load_project(server / APP_DIR / "envplane.yaml", {}), spec)
    assert head.root == server / APP_DIR


def test_a_newer_head_updates_the_same_worktree_and_drops_stray_files(repos: tuple[Path, Path, Path]) -> None:
    _, author, server = repos
    checkouts = trees(server)
    spec = checkouts.prepare(5, pr_head(author, 5, "B1\n"), lambda: [])
    (spec.parent / "www" / "stray.txt").write_text("left by a build")
    spec = checkouts.prepare(5, pr_head(author, 5, "B2\n"), lambda: [])
    assert (spec.parent / "www" / "index.html").read_text() == "B2\n"
    assert not (spec.parent / "www" / "stray.txt").exists()


def test_a_sha_the_remote_will_not_serve_comes_through_pull_n_head(repos: tuple[Path, Path, Path]) -> None:
    _, author, server = repos
    # Protocol v0 lets a client ask only for advertised tips: B is no tip once the PR moved on to C.
    git("config", "protocol.version", "0", cwd=server)
    b = pr_head(author, 6, "B\n")
    git("checkout", "-q", "pr-6", cwd=author)
    c = commit_file(author, f"{APP_DIR}/www/index.html", "C\n", "PR 6: C")
    git("push", "-q", "-f", "origin", "HEAD:refs/pull/6/head", cwd=author)
    spec = trees(server).prepare(6, b, lambda: [])
    assert git("rev-parse", "HEAD", cwd=spec.parent) == b != c
    assert (spec.parent / "www" / "index.html").read_text() == "B\n"


def test_a_sha_that_is_nowhere_is_a_clear_error(repos: tuple[Path, Path, Path]) -> None:
    _, _, server = repos
    with pytest.raises(BackendError, match=r"cannot fetch dddddddddddd \(head of PR 9\) from remote 'origin'"):
        trees(server).prepare(9, "d" * 40, lambda: [])


def test_worktrees_are_bounded_and_unused_ones_make_room(repos: tuple[Path, Path, Path]) -> None:
    _, author, server = repos
    checkouts = trees(server, limit=2)
    for pr in (1, 2):
        checkouts.prepare(pr, pr_head(author, pr, f"{pr}\n"), lambda: [])
    third = pr_head(author, 3, "3\n")
    with pytest.raises(BackendError, match=r"2 PR worktrees are in use, the limit of webhook\.max_worktrees"):
        checkouts.prepare(3, third, lambda: [])
    checkouts.prepare(3, third, lambda: [1])  # PR 1's preview is down: its worktree may go
    assert checkouts.present() == [2, 3]
    assert "pr-1" not in git("worktree", "list", cwd=server)
    checkouts.prepare(2, pr_head(author, 2, "2b\n"), lambda: [])  # an update needs no room


def test_removing_a_worktree_unregisters_it_and_drops_its_ref(repos: tuple[Path, Path, Path]) -> None:
    _, author, server = repos
    checkouts = trees(server)
    checkouts.prepare(4, pr_head(author, 4, "B\n"), lambda: [])
    assert checkouts.remove(4)
    assert not checkouts.folder(4).exists()
    assert "pr-4" not in git("worktree", "list", cwd=server)
    assert git("for-each-ref", "refs/envplane", cwd=server) == ""
    assert not checkouts.remove(4)


def test_the_server_must_run_in_a_git_checkout_with_the_remote(tmp_path: Path,
                                                              repos: tuple[Path, Path, Path]) -> None:
    write_app(tmp_path / "plain")
    with pytest.raises(UsageError, match="is not in a git checkout"):
        Checkouts.of(load_project(tmp_path / "plain" / "envplane.yaml", {}))
    _, _, server = repos
    with pytest.raises(UsageError, match="has no remote 'upstream'"):
        Checkouts.of(load_project(server / APP_DIR / "envplane.yaml", {}), remote="upstream").check_remote()
