"""The apps `envplane serve` runs for: each one's name and the envplane.yaml it is loaded from.

An app is registered by the path of its spec (or its folder); the spec is loaded once at
registration, so a path that holds no valid spec is refused then, with the spec's own
errors. Each request loads the spec again (`load`): edits to it take effect without a
restart, as they do for the CLI.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from envplane.errors import NotFound, NothingToDo, StateError, UsageError
from envplane.server import seals
from envplane.state import audit
from envplane.state.db import Store
from envplane.state.models import ServerAppRow

if TYPE_CHECKING:
    from envplane.spec.load import Project


APP_NAME = re.compile(r"[a-z][a-z0-9-]{0,199}")  # what a spec's `app:` may be, and more


@dataclass(frozen=True)
class RegisteredApp:
    name: str
    spec_path: Path
    sealed: bool = True  # False: its row was changed outside envplane, and it is not served

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "spec_path": str(self.spec_path), "valid": self.sealed}


def _fields(name: str, spec_path: str) -> dict[str, Any]:
    return {"name": name, "spec_path": spec_path}


def _registered(store: Store, row: ServerAppRow) -> RegisteredApp:
    return RegisteredApp(row.name, Path(row.spec_path),
                         seals.intact(store, "server_apps", _fields(row.name, row.spec_path), row.seal))


def spec_file(path: Path) -> Path:
    """The absolute path of the spec a PATH names (a folder means its envplane.yaml)."""
    resolved = path.expanduser().resolve()
    return resolved / "envplane.yaml" if resolved.is_dir() else resolved


def add(store: Store, path: Path, environ: Mapping[str, str] | None = None, *,
        actor: str = "envplane", origin: str | None = None) -> RegisteredApp:
    """Register the app whose spec is at `path` (a file or its folder). The same app from
    the same spec again: NothingToDo. Another spec with the same app name: refused."""
    import os

    from envplane.actions import open_project

    spec = spec_file(path)
    project = open_project(spec, os.environ if environ is None else environ)  # SpecError: exit 2
    name = project.app
    try:
        with store.serialised("server-apps") as session:
            row = session.scalars(select(ServerAppRow).where(ServerAppRow.name == name)).first()
            if row is not None:
                if Path(row.spec_path) == spec and _registered(store, row).sealed:
                    raise NothingToDo(f"app {name} is registered already from {spec}")
                raise _taken(name, row.spec_path)
            session.add(ServerAppRow(name=name, spec_path=str(spec), added_at=datetime.now(UTC),
                                     added_by=actor,
                                     seal=seals.seal(store, "server_apps", _fields(name, str(spec)))))
    except IntegrityError:  # another `apps add` of the same name won the race
        raise _taken(name, None) from None
    detail = {"spec": str(spec)} | ({"git": origin} if origin else {})
    audit.record(store, actor, "app-add", name, None, None, "ok", detail)
    return RegisteredApp(name, spec)


def add_from_git(store: Store, url: str, spec: str = "", environ: Mapping[str, str] | None = None, *,
                 actor: str = "envplane") -> tuple[Path, RegisteredApp]:
    """Clone `url` into the server's home (server/app_sources.py) and register the spec at
    `spec` inside it; (the clone, the app). A registration that fails removes the clone."""
    import os
    import shutil

    from envplane.server import app_sources

    env = os.environ if environ is None else environ
    folder, spec_path = app_sources.clone(url, spec, env)
    try:
        return folder, add(store, spec_path, env, actor=actor, origin=url)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # cloned by this call: nobody else's
        raise


def _taken(name: str, where: str | None) -> UsageError:
    source = f" from {where}" if where else ""
    return UsageError(f"an app named {name} is registered already{source}",
                      f"`envplane apps remove {name}` first, or give this app another `app:` name")


def list_apps(store: Store) -> list[RegisteredApp]:
    with store.session() as session:
        rows = session.scalars(select(ServerAppRow).order_by(ServerAppRow.name))
        return [_registered(store, row) for row in rows]


def get(store: Store, name: str) -> RegisteredApp:
    """The registered app; NotFound when there is none, StateError when its row was changed
    outside envplane (pointing the server at another spec would run that spec)."""
    with store.session() as session:
        row = None
        if isinstance(name, str) and APP_NAME.fullmatch(name):  # else no such app, nor a query
            row = session.scalars(select(ServerAppRow).where(ServerAppRow.name == name)).first()
        if row is None:
            raise NotFound(f"no app named {name!r} is registered with the server",
                           "`envplane apps list` shows them; `envplane apps add PATH` registers one")
        found = _registered(store, row)
    if not found.sealed:
        raise StateError(f"the registration of app {name} was changed outside envplane (its seal does not "
                         "hold): it is not served",
                         f"check the audit log, then `envplane apps remove {name}` and add it again")
    return found


def load(store: Store, name: str, environ: Mapping[str, str]) -> Project:
    """The registered app's project, its spec read now. NotFound when no such app is registered;
    the spec's own errors when it no longer loads, or now names another app."""
    from envplane.actions import open_project

    registered = get(store, name)
    project = open_project(registered.spec_path, environ)
    if project.app != registered.name:
        raise UsageError(f"{registered.spec_path} now names app {project.app}, registered as "
                         f"{registered.name}",
                         f"`envplane apps remove {registered.name}` and `envplane apps add` it again")
    return project


def remove(store: Store, name: str, *, actor: str = "envplane") -> None:
    """Forget a registered app: the server no longer serves it. Its instances and state are
    left as they are."""
    with contextlib.suppress(StateError):  # NotFound for an unknown or malformed name; a broken seal
        get(store, name)                   # does not stop the removal
    with store.serialised("server-apps") as session:
        row = session.scalars(select(ServerAppRow).where(ServerAppRow.name == name)).first()
        if row is None:
            raise NotFound(f"no app named {name!r} is registered with the server",
                           "`envplane apps list` shows them")
        session.delete(row)
    audit.record(store, actor, "app-remove", name, None, None, "ok", {})
