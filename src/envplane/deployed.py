"""What a healthy `up` left running, so that the next `up` of the same thing runs no Compose (#11).

`docker compose up` of an unchanged project looks at every container to find nothing to do:
most of a no-op `up`'s time. After a healthy `up` the instance's folder keeps a stamp: a
digest of what Compose was given — the rendered file, the content of every file Compose
reads beside it (env files, secrets and configs files) and the id of each service's image —
and the id and name of each container that ran. The next `up` skips Compose only when the
digest is the same and exactly those containers run under those names, every one of them.
Anything else — a changed file, env file or secret, another image behind the same tag, a
stopped, missing, extra, replaced or half-replaced container — goes through Compose as before.

The digest and the comparison are pure (tested on data); reading and writing the stamp are
the only I/O here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envplane.backends.runtime.facts import ContainerFact

STAMP = "deployed.json"  # in the instance's folder (plan.instance_dir), removed with it by `down`
SAME = "the same Compose file, env files and images run already"


@dataclass(frozen=True)
class Deployed:
    digest: str
    containers: Mapping[str, str]  # container id -> its name


def files_read(data: Mapping[str, Any]) -> list[str]:
    """The files Compose reads besides the rendered one: every service's env files and the
    top-level secrets' and configs' files, as written in the file."""
    found: list[str] = []
    for svc in (data.get("services") or {}).values():
        entries = svc.get("env_file") if isinstance(svc, Mapping) else None
        for entry in [entries] if isinstance(entries, str | Mapping) else entries or []:
            path = entry.get("path") if isinstance(entry, Mapping) else entry
            if isinstance(path, str):
                found.append(path)
    for kind in ("secrets", "configs"):
        for item in (data.get(kind) or {}).values():
            if isinstance(item, Mapping) and isinstance(item.get("file"), str):
                found.append(item["file"])
    return found


def digest(file_text: str, files: Mapping[str, bytes | None], images: Mapping[str, str]) -> str:
    """What Compose is given: the file, each file it reads (None: missing), each image id."""
    h = hashlib.sha256(file_text.encode())
    for path, content in sorted(files.items()):
        h.update(f"\0file {path}\0".encode())
        h.update(b"\0missing" if content is None else hashlib.sha256(content).digest())
    for service, image in sorted(images.items()):
        h.update(f"\0image {service}={image}".encode())
    return h.hexdigest()


def read_files(paths: Iterable[str], base: Path) -> dict[str, bytes | None]:
    """The content of each file (relative paths from `base`, the Compose file's folder)."""
    found: dict[str, bytes | None] = {}
    for path in paths:
        try:
            found[path] = (base / path).read_bytes()
        except OSError:
            found[path] = None
    return found


def changed(stamp: Deployed | None, now: str, running: Iterable[ContainerFact],
            images: Mapping[str, str]) -> str | None:
    """Why Compose must run, or None when the stamp's containers run what `now` describes."""
    if stamp is None:
        return "no healthy `up` recorded"
    if stamp.digest != now:
        return "the Compose file, an env file or an image changed"
    facts = list(running)
    if {f.id: f.name for f in facts} != dict(stamp.containers):  # a renamed one: half-replaced
        return "other containers than the last `up` started"
    for fact in facts:
        if fact.state != "running":
            return f"{fact.name} is {fact.state}"
        if images.get(fact.service) != fact.image:
            return f"{fact.name} runs another image"
    return None


def stamp_of(now: str, running: Iterable[ContainerFact]) -> Deployed | None:
    """The stamp of a healthy `up`; None when not every container runs (nothing to rely on)."""
    facts = list(running)
    if not facts or any(f.state != "running" for f in facts):
        return None
    return Deployed(now, {f.id: f.name for f in facts})


def load(path: Path) -> Deployed | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Deployed(str(data["digest"]), {str(k): str(v) for k, v in data["containers"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # none, or unreadable: Compose runs, as it always did


def dump(stamp: Deployed) -> str:
    return json.dumps({"digest": stamp.digest, "containers": dict(stamp.containers)}, sort_keys=True)
