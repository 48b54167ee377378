"""Git worktrees of pull-request heads: what a webhook preview is built from.

The webhook server runs in a git checkout of the app's repository. For each PR it keeps
one worktree, at `.envplane/webhook/worktrees/pr-N` beside the server's spec, checked out
at the PR's head sha fetched from the repository's remote (by sha, else `pull/N/head`).
The app is loaded from the same folder inside that worktree as the server's spec is inside
its checkout; its state (store, secrets, rendered files) stays the server's.

Worktrees are few (`webhook.max_worktrees`): to make room, the worktrees of previews that
are down, purged or whose PR closed go first; with none of those the action fails.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from envplane.commands import git
from envplane.errors import BackendError, NotFound, UsageError
from envplane.private import make_dirs
from envplane.run import run
from envplane.spec.load import Project, load_project

WORKTREES = PurePosixPath(".envplane/webhook/worktrees")
# Worktrees share the repository's object store and refs: one git change at a time.
_GIT = threading.Lock()
FETCH_SECONDS = 300.0


def _git_env() -> dict[str, str]:
    # A remote that asks for a password must fail, not hang the worker on a prompt.
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0"}


def repository_root(folder: Path, hint: str = "run it in a clone of the app's repository") -> Path:
    """The top folder of the git checkout `folder` is in; UsageError when it is in none."""
    found = run(git.toplevel(folder), check=False, what="git rev-parse", env=_git_env())
    if found.returncode != 0:
        raise UsageError(f"{folder} is not in a git checkout", hint)
    return Path(found.stdout.strip()).resolve()


@dataclass(frozen=True)
class Checkouts:
    """The PR worktrees of one app, served from the git checkout at `repo`."""

    repo: Path  # top folder of the server's git checkout
    app_dir: PurePosixPath  # the spec's folder, relative to `repo`
    spec_name: str
    home: Path  # the server's app folder: its `.envplane/` holds every worktree and all state
    app: str
    remote: str = "origin"
    limit: int = 10

    @classmethod
    def of(cls, project: Project, remote: str = "origin", limit: int = 10) -> Checkouts:
        """The PR worktrees of `project`, which must live in a git checkout."""
        spec = project.doc.file.resolve()
        repo = repository_root(spec.parent, "the webhook builds each PR from git: run it in a clone of "
                               "the app's repository")
        return cls(repo, PurePosixPath(spec.parent.relative_to(repo).as_posix()), spec.name,
                   project.root, project.app, remote, limit)

    def check_remote(self) -> None:
        if run(git.remote_url(self.repo, self.remote), check=False, what="git remote",
               env=_git_env()).returncode:
            raise UsageError(f"the git checkout at {self.repo} has no remote {self.remote!r}",
                             "PR heads are fetched from it: `git remote add origin URL`, or set "
                             "webhook.remote in envplane.yaml")

    def folder(self, pr: int) -> Path:
        return self.home / WORKTREES / f"pr-{pr}"

    def ref(self, pr: int) -> str:
        return f"refs/envplane/{self.app}/pr-{pr}"

    def present(self) -> list[int]:
        base = self.home / WORKTREES
        if not base.is_dir():
            return []
        found = [p.name.removeprefix("pr-") for p in base.iterdir() if p.name.startswith("pr-")]
        return sorted(int(n) for n in found if n.isdigit())

    def prepare(self, pr: int, sha: str, evictable: Callable[[], Iterable[int]]) -> Path:
        """Check PR `pr` out at `sha`; return the spec's path inside the worktree."""
        folder = self.folder(pr)
        with _GIT:
            self._fetch(pr, sha)
            self._check_out(folder, sha, f"PR {pr}", lambda: self._make_room(pr, evictable))
        return folder / self.app_dir / self.spec_name

    def prepare_branch(self, env: str, branch: str) -> tuple[str, Path]:
        """Check out the head of `branch` (fetched from the remote) in `env`'s own worktree,
        never in the server's checkout; (its sha, the spec's path inside the worktree).
        `branch` must be a checked name (service.branches.check_branch)."""
        folder = self.home / WORKTREES / f"env-{env}"
        ref = f"refs/envplane/{self.app}/env-{env}"
        with _GIT:
            fetched = run(git.fetch(self.repo, self.remote, f"refs/heads/{branch}", ref), check=False,
                          what="git fetch", env=_git_env(), timeout=FETCH_SECONDS)
            if fetched.returncode != 0:
                raise NotFound(f"cannot fetch branch {branch!r} from remote {self.remote!r}: "
                               f"{fetched.stderr.strip()[-300:] or 'not found'}",
                               "is it pushed? `git push origin BRANCH`")
            sha = run(git.commit_of(self.repo, ref), what="git rev-parse", env=_git_env()).stdout.strip()
            self._check_out(folder, sha, branch)
        return sha, folder / self.app_dir / self.spec_name

    def prepare_commit(self, env: str, sha: str) -> Path:
        """Check commit `sha` (a full sha, fetched from the remote) out in `env`'s own
        worktree, the one `prepare_branch` uses; the spec's path inside it. Its caller holds
        the instance's lock: the worktree is the source of what runs there."""
        folder = self.home / WORKTREES / f"env-{env}"
        with _GIT:
            fetched = run(git.fetch(self.repo, self.remote, sha, f"refs/envplane/{self.app}/env-{env}"),
                          check=False, what="git fetch", env=_git_env(), timeout=FETCH_SECONDS)
            if run(git.has_commit(self.repo, sha), check=False, what="git cat-file").returncode != 0:
                raise NotFound(f"cannot fetch commit {sha[:12]} from remote {self.remote!r}: "
                               f"{fetched.stderr.strip()[-300:] or 'not found'}",
                               "is it pushed? `git push origin BRANCH`")
            self._check_out(folder, sha, f"commit {sha[:12]}")
        return folder / self.app_dir / self.spec_name

    def _check_out(self, folder: Path, sha: str, what: str, make_room: Callable[[], None] = lambda: None
                   ) -> None:
        """`folder`, a worktree of ours, at `sha` with nothing else in it (under _GIT)."""
        if _is_worktree(folder):
            run(git.checkout(folder, sha), what=f"git checkout of {what}", env=_git_env())
            run(git.clean(folder), what=f"git clean of {what}", env=_git_env())
            return
        make_room()
        self._discard(folder)
        make_dirs(folder.parent)  # under .envplane/: private and git-ignored first
        run(git.worktree_add(self.repo, folder, sha), what=f"git worktree add for {what}", env=_git_env())

    def remove(self, pr: int) -> bool:
        """Remove PR `pr`'s worktree and its fetched ref; False when it had none."""
        folder = self.folder(pr)
        with _GIT:
            if not folder.exists():
                return False
            self._discard(folder)
            run(git.delete_ref(self.repo, self.ref(pr)), check=False, what="git update-ref",
                env=_git_env())
            return True

    def _fetch(self, pr: int, sha: str) -> None:
        ref = self.ref(pr)
        by_sha = run(git.fetch(self.repo, self.remote, sha, ref), check=False, what="git fetch",
                     env=_git_env(), timeout=FETCH_SECONDS)
        if by_sha.returncode == 0:
            return
        # A remote that refuses a sha still serves the PR's ref (GitHub keeps refs/pull/N/head,
        # for forks too); the sha must then be in what came.
        run(git.fetch(self.repo, self.remote, f"refs/pull/{pr}/head", ref), check=False,
            what="git fetch", env=_git_env(), timeout=FETCH_SECONDS)
        if run(git.has_commit(self.repo, sha), check=False, what="git cat-file").returncode != 0:
            raise BackendError(
                f"cannot fetch {sha[:12]} (head of PR {pr}) from remote {self.remote!r}: "
                f"{by_sha.stderr.strip()[-300:] or 'not found'}",
                "is the webhook's checkout a clone of the repository the hook belongs to?")

    def _make_room(self, pr: int, evictable: Callable[[], Iterable[int]]) -> None:
        present = [n for n in self.present() if n != pr]
        if len(present) < self.limit:
            return
        for other in evictable():
            if other in present and other != pr:
                self._discard(self.folder(other))
                run(git.delete_ref(self.repo, self.ref(other)), check=False, what="git update-ref",
                    env=_git_env())
                present.remove(other)
                if len(present) < self.limit:
                    return
        raise BackendError(
            f"{len(present)} PR worktrees are in use, the limit of webhook.max_worktrees",
            "close or take down a preview (`envplane preview down --pr N`), or raise "
            "webhook.max_worktrees in envplane.yaml")

    def _discard(self, folder: Path) -> None:
        """Remove a worktree folder (ours only: under WORKTREES), registered with git or not."""
        if (self.home / WORKTREES) not in folder.parents:
            raise BackendError(f"refusing to remove {folder}: not a PR worktree")
        if folder.exists():
            run(git.worktree_remove(self.repo, folder), check=False, what="git worktree remove",
                env=_git_env())
            shutil.rmtree(folder, ignore_errors=True)
        run(git.worktree_prune(self.repo), check=False, what="git worktree prune", env=_git_env())


def _is_worktree(folder: Path) -> bool:
    return (folder / ".git").is_file() and run(git.head(folder), check=False, what="git rev-parse",
                                                env=_git_env()).returncode == 0


def of_app(project: Project) -> Checkouts:
    """The app's worktrees, as the webhook keeps them (spec `webhook.remote`, `max_worktrees`)."""
    return Checkouts.of(project, project.spec.webhook.remote, project.spec.webhook.max_worktrees)


def other_commit(project: Project, ref: str) -> bool:
    """Whether `ref` is a full commit sha that the app's checkout is not at: a deploy of it
    fetches it into a worktree of the instance's own."""
    from envplane.release.flow import checked_out
    from envplane.webhook import SHA

    if not SHA.fullmatch(ref):
        return False
    try:
        checked_out(project.root, ref)
    except UsageError:
        return True
    return False


def checked_ref(project: Project, ref: str | None) -> None:
    """For a caller away from the checkout (API, MCP): a ref is the checkout's commit, or a
    full commit sha fetched from the app's remote (UsageError otherwise, before any job)."""
    from envplane.release.flow import checked_out

    if ref is None:
        return
    if other_commit(project, ref):
        of_app(project).check_remote()  # it is fetched from there
    else:
        checked_out(project.root, ref)


def head_project(server: Project, spec_path: Path) -> Project:
    """The app as the PR's tree has it, keeping the server's state folder.

    Spec and Compose files (and so build contexts and bind sources) come from the worktree;
    `.envplane/` (state, secrets, rendered files) stays the server's. The PR may not rename
    the app: its state and secrets are the server's app's. A `.env` the PR's tree lacks
    (usually git-ignored) comes from the server's checkout.
    """
    if not spec_path.is_file():
        raise UsageError(f"the PR's tree has no {spec_path.name} at {spec_path.parent}",
                         "a preview is built from the PR's own envplane.yaml")
    head = load_project(spec_path, server.environ)
    if head.app != server.app:
        raise UsageError(f"the PR renames the app from {server.app!r} to {head.app!r}",
                         "a webhook preview belongs to the server's app; merge the rename first")
    dotenv = head.dotenv if (spec_path.parent / ".env").is_file() else server.dotenv
    # A PR that drops production's `servers:` from its spec must not make them readable.
    return replace(head, root=server.root, dotenv=dotenv, credentials=head.credentials | server.credentials)
