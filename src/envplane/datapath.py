"""Which folder an instance owns: the rule a data path passes before envplane puts data in
it, and again before `--purge` deletes it (issue 9, item 2). Pure.

A data path belongs to its instance when it is

1. absolute after templating, with no `..` (`{project_dir}` names the folder of envplane.yaml);
2. neither `/`, nor the project's folder, nor a folder above it (those hold the spec, the
   state and the user's own files);
3. named for the app and the instance by its last two folders: the app's name and the
   instance's (`staging`, `pr-5`, `ci-42`) each appear in one of them as whole words
   between `/`, `-`, `_` and `.` — `/data/shop/staging`, `/data/test/shop-pr-5`,
   `/data/dr/shop`, `/tmp/envplane/shop-ci-42`, `{project_dir}/.envplane/data/shop-docker`.

`isolation.py` adds the fourth part: no other instance's data path contains it or lies
inside it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

RULE_HINT = (
    "an instance owns only a folder that names it: an absolute path whose last two folders "
    "name the app and the instance, e.g. /data/{app}/staging or /data/test/{app}-pr-{pr} "
    "({project_dir} is the folder of envplane.yaml)"
)
_SEPARATORS = re.compile(r"[-_.]+")


def not_owned(path: str, app: str, instance: str, project_dir: PurePosixPath) -> str | None:
    """Why `path` cannot be the data path of `instance` of `app`; None when it can."""
    p = PurePosixPath(path)
    if not p.is_absolute():
        return f"{path} is not an absolute path"
    if ".." in p.parts:
        return f"{path} climbs up with '..'"
    if len(p.parts) < 3:
        return f"{path} is too close to the root"
    if p == project_dir or project_dir.is_relative_to(p):
        return f"{path} holds the project's folder {project_dir} (its spec, state and files)"
    if not _names(p.parts[-2:], app, instance):
        return (f"{path} does not name both the app {app!r} and the instance {instance!r} "
                "in its last two folders")
    return None


def _names(folders: tuple[str, ...], app: str, instance: str) -> bool:
    """The app's words and the instance's words each appear whole in one of the folders,
    without sharing a word."""
    words = [_SEPARATORS.split(folder) for folder in folders]
    apps = list(_spans(words, app.split("-")))
    return any(not (a[0] == i[0] and a[1] < i[2] and i[1] < a[2])
               for a in apps for i in _spans(words, instance.split("-")))


def _spans(folders: list[list[str]], wanted: list[str]) -> list[tuple[int, int, int]]:
    """(folder index, start, end) of every run of `wanted` words within one folder."""
    return [(index, start, start + len(wanted))
            for index, words in enumerate(folders)
            for start in range(len(words) - len(wanted) + 1)
            if words[start:start + len(wanted)] == wanted]
