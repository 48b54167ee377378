"""Where a registered app's spec comes from: a path on the server's host, or a git URL
that `envplane apps add` clones into the server's home (`$ENVPLANE_SERVER_HOME/apps/APP`).

The clone is an ordinary checkout whose `origin` is the URL given: previews, branch deploys
and releases fetch their own commits from it into worktrees (checkouts.py), as they do for
an app registered by path. Only URLs git can fetch without running anything of the
caller's choosing are cloned (https, http, ssh, git, file and scp-like `user@host:path`),
and never one that carries a password or token: git would keep it in the clone's config,
and the audit log would record it. Credentials belong in an SSH key or a git credential
helper of the user that runs the server.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from envplane.errors import BackendError, UsageError
from envplane.private import make_dirs
from envplane.run import run
from envplane.server.home import private_home, server_home

APPS_FOLDER = "apps"
CLONE_SECONDS = 600.0
SCHEMES = ("https", "http", "ssh", "git", "file")
# scp-like: user@host:path, as `git clone git@github.com:org/app.git` takes it
SCP_LIKE = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*")
# what git itself treats as a URL rather than a path: scheme://, or a transport helper's ::
LOOKS_LIKE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*(://|::)")


def is_git_url(source: str) -> bool:
    """Whether `apps add SOURCE` names a repository to clone rather than a local path."""
    return bool(LOOKS_LIKE_URL.match(source) or SCP_LIKE.fullmatch(source)) or source.startswith("-")


def check_url(url: str) -> str:
    """The URL, when git may clone it; UsageError naming what is wrong otherwise (never the
    credential it carries)."""
    if url.startswith("-") or any(c.isspace() or ord(c) < 32 for c in url):
        raise _not_clonable()
    if SCP_LIKE.fullmatch(url):
        return url
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or "::" in url.split("/", 1)[0]:
        raise _not_clonable()
    # http(s): any user part is a token; ssh and the others: a password after the user
    if "@" in parts.netloc and (parts.scheme in ("https", "http") or parts.password is not None):
        shown = parts._replace(netloc=f"…@{parts.hostname or ''}").geturl()
        raise UsageError(f"refusing credentials in the URL {shown}: git would keep them in the clone's "
                         "config and the audit log would record them",
                         "give the URL without them and let git find them: an SSH URL with the server "
                         "user's key, or `git config --global credential.helper store`")
    return url


def _not_clonable() -> UsageError:
    return UsageError("not a git URL envplane clones (an option, a transport helper like ext:: or fd::, "
                      "or a scheme other than " + ", ".join(SCHEMES) + ")",
                      "give an https://, ssh://, git@host:path or file:// URL, or a local path")


def clone(url: str, spec: str, environ: Mapping[str, str]) -> tuple[Path, Path]:
    """Clone `url` into the server's home; (the clone's folder, the path of its spec: `spec`
    inside the clone, the spec file or its folder). The clone is named after the app its
    spec names; a clone of that name already there is refused, never replaced. Nothing is
    left behind on failure."""
    from envplane.actions import open_project
    from envplane.server.apps import spec_file

    url = check_url(url)
    inside = PurePosixPath(spec or ".")
    if inside.is_absolute() or ".." in inside.parts:
        raise UsageError(f"--spec {spec!r} must be a path inside the repository",
                         "e.g. --spec deploy/envplane.yaml")
    apps = private_home(server_home(environ)) / APPS_FOLDER
    make_dirs(apps)
    incoming = apps / f".clone-{secrets.token_hex(6)}"
    try:
        _git_clone(url, incoming)
        app = open_project(spec_file(incoming / inside), environ).app  # SpecError: exit 2
        final = apps / app
        try:
            if final.exists():
                raise FileExistsError
            incoming.rename(final)  # fails on a folder another `apps add` just put there
        except OSError:
            raise UsageError(f"a clone of app {app} at {final} exists already",
                             f"`envplane apps add {final / inside}` registers it as it is, or move it away "
                             "and add the URL again") from None
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)  # made by this call, so it is ours to remove
        raise
    return final, spec_file(final / inside)


def _git_clone(url: str, into: Path) -> None:
    # GIT_ALLOW_PROTOCOL also holds for submodules and redirects; no prompt may hang the command.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ":".join(SCHEMES)}
    done = run(["git", "clone", "--quiet", "--no-recurse-submodules", "--", url, str(into)], check=False,
               what="git clone", env=env, timeout=CLONE_SECONDS)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or ["git gave no reason"]
        raise BackendError(f"cannot clone {url}: {reason[0]}",
                           "is the URL right, and can the server's user reach it (SSH key, credential "
                           "helper)?")
