"""git command lines for checking out pull-request heads and branches: data, never run here.

Callers pass only values they checked (a 40/64-hex sha, a PR number, a remote name from
the spec, a branch name service.branches.check_branch let through), so nothing from a
webhook payload or an assistant can become an option of git.
"""

from __future__ import annotations

from pathlib import Path


def _git(repo: Path) -> list[str]:
    return ["git", "-C", str(repo)]


def toplevel(folder: Path) -> list[str]:
    return [*_git(folder), "rev-parse", "--show-toplevel"]


def remote_url(repo: Path, remote: str) -> list[str]:
    return [*_git(repo), "remote", "get-url", remote]


def fetch(repo: Path, remote: str, source: str, ref: str) -> list[str]:
    """Fetch one commit (a sha, or `refs/pull/N/head`) into `ref`, which keeps it from gc."""
    return [*_git(repo), "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head",
            remote, f"+{source}:{ref}"]


def commit_of(repo: Path, ref: str) -> list[str]:
    """The sha a ref of ours points at (`refs/envplane/...`)."""
    return [*_git(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]


def has_commit(repo: Path, sha: str) -> list[str]:
    return [*_git(repo), "cat-file", "-e", f"{sha}^{{commit}}"]


def worktree_add(repo: Path, folder: Path, sha: str) -> list[str]:
    return [*_git(repo), "worktree", "add", "--quiet", "--detach", str(folder), sha]


def checkout(folder: Path, sha: str) -> list[str]:
    return [*_git(folder), "checkout", "--quiet", "--force", "--detach", sha]


def clean(folder: Path) -> list[str]:
    """Remove every file git does not track, ignored ones too: the tree is the commit's."""
    return [*_git(folder), "clean", "-ffdxq"]


def head(folder: Path) -> list[str]:
    return [*_git(folder), "rev-parse", "HEAD"]


def worktree_remove(repo: Path, folder: Path) -> list[str]:
    return [*_git(repo), "worktree", "remove", "--force", "--force", str(folder)]


def worktree_prune(repo: Path) -> list[str]:
    return [*_git(repo), "worktree", "prune"]


def delete_ref(repo: Path, ref: str) -> list[str]:
    return [*_git(repo), "update-ref", "-d", ref]
