"""One env's disaster-recovery settings, every default filled in (pure but for reading a
recipients file the spec names).

`environments.<env>.backup` / `.dr` override the top-level `backup:` / `dr:` key by key;
with neither, the store is a folder under `~/.local/share/envplane/backups` and the
recipient is a key envplane generates (dr/keys.py). Production is backed up every 24 h
by default (the ladder's "persistent, backed up"); other envs only when their `backup:`
says `every:`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from envplane.errors import SpecError
from envplane.preview import duration
from envplane.spec.load import Project
from envplane.spec.models import AGE_RECIPIENT, SSH_RECIPIENT, BackupSpec, DrCheckSpec, DrSpec, KeepSpec

M = TypeVar("M", bound=BaseModel)
DEFAULT_EVERY = {"production": "24h"}


@dataclass(frozen=True)
class StoreUrl:
    kind: str  # "s3" or "file"
    bucket: str  # s3 only
    prefix: str  # s3: key prefix (no slashes at either end); file: the folder
    text: str

    @classmethod
    def parse(cls, text: str, environ: Mapping[str, str]) -> StoreUrl:
        if text.startswith("s3://"):
            bucket, _, prefix = text[5:].partition("/")
            return cls("s3", bucket, prefix.strip("/"), text)
        path = text.removeprefix("file://")
        if path.startswith("~/"):
            path = str(_home(environ) / path[2:])
        return cls("file", "", os.path.normpath(path), text)


@dataclass(frozen=True)
class DrConfig:
    env: str
    store: StoreUrl
    recipients: tuple[str, ...] | None  # None: the generated key (dr/keys.py)
    keep: KeepSpec
    every: timedelta | None
    archive_timeout: timedelta
    checks: tuple[DrCheckSpec, ...]
    rto: timedelta
    rpo: timedelta
    drill_every: timedelta
    explicit: bool  # the spec has a backup: for this env (or at the top)


def dr_config(project: Project, env: str, environ: Mapping[str, str]) -> DrConfig:
    project.env(env)  # an unknown env is a usage error
    spec = project.spec
    override = spec.environments.get(env)
    backup = _merged(spec.backup, override.backup if override else None, BackupSpec)
    dr = _merged(spec.dr, override.dr if override else None, DrSpec)
    where = ("environments", env, "backup") if override and override.backup else ("backup",)
    store = backup.store or f"file://{default_root(environ)}"
    every = backup.every or DEFAULT_EVERY.get(env)
    return DrConfig(
        env=env,
        store=StoreUrl.parse(store, environ),
        recipients=_recipients(project, backup.recipients, (*where, "recipients")),
        keep=backup.keep,
        every=duration(every) if every else None,
        archive_timeout=duration(backup.archive_timeout),
        checks=tuple(dr.checks),
        rto=duration(dr.rto),
        rpo=duration(dr.rpo),
        drill_every=duration(dr.drill_every),
        explicit=spec.backup is not None or bool(override and override.backup),
    )


def default_root(environ: Mapping[str, str]) -> str:
    """`$XDG_DATA_HOME/envplane/backups` (default `~/.local/share`); each app has its folder."""
    data = environ.get("XDG_DATA_HOME") or ""
    base = Path(data) if Path(data).is_absolute() else _home(environ) / ".local" / "share"
    return str(base / "envplane" / "backups")


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or Path.home())


def _merged(top: M | None, env: M | None, model: type[M]) -> M:
    """The env's keys over the top-level ones (only the keys the env's spec writes)."""
    base = top if top is not None else model()
    if env is None:
        return base
    return base.model_copy(update={key: getattr(env, key) for key in env.model_fields_set})


def _recipients(project: Project, given: list[str] | str | None,
                where: tuple[str, ...]) -> tuple[str, ...] | None:
    if given is None:
        return None
    if isinstance(given, list):
        return tuple(given)
    path = (project.root / given).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([project.doc.problem(where, f"cannot read recipients file {given!r}: "
                                             f"{getattr(exc, 'strerror', None) or exc}",
                                             "paths are relative to the folder of envplane.yaml")]) from None
    if "AGE-SECRET-KEY-" in text.upper():
        raise SpecError([project.doc.problem(
            where, f"{given} holds a private age key, not recipients",
            "name the public keys (age-keygen -y KEYFILE prints one) and keep the private key off "
            "this machine's project folder")])
    found = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    bad = [line for line in found if not (AGE_RECIPIENT.match(line) or SSH_RECIPIENT.match(line))]
    if bad or not found:
        what = f"{bad[0][:20]!r}… is not an age recipient" if bad else "it names no recipient"
        raise SpecError([project.doc.problem(where, f"recipients file {given}: {what}",
                                             "one age1… or ssh-ed25519 … public key per line")])
    return tuple(found)
