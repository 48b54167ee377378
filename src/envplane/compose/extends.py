"""Expand `extends` in a merged model, as Compose does. Pure.

`extends: base`, `extends: {service: base}` and `extends: {service: base, file: x.yml}`:
the service is its base merged with its own keys, by the same rules as `-f a -f b`.
A base in another file keeps its relative paths relative to that file. The other
files come in as Documents read beforehand (load.py), so nothing here reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from envplane.compose.merge import ComposeModel, merge_service, normal_top
from envplane.errors import Problem, SpecError
from envplane.spec.source import Document, FieldPath


def extends_path(written_in: Path, file: str) -> Path:
    """The file an `extends.file` names, relative to the file it is written in."""
    return Path(os.path.normpath(written_in.parent / os.path.expanduser(file)))


@dataclass(frozen=True)
class _Scope:
    """The services one file offers to `extends`, and that file."""

    file: Path
    services: Mapping[str, Any]


class _Failed(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def expand_extends(model: ComposeModel, sources: Mapping[Path, Document]) -> ComposeModel:
    """Every service with `extends` replaced by its expansion; cycles are a SpecError."""
    services = model.services
    if not any(isinstance(s, dict) and "extends" in s for s in services.values()):
        return model
    origin = dict(model.origin)
    resolved: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, svc in services.items():
        if not (isinstance(svc, dict) and "extends" in svc):
            resolved[name] = svc
            continue
        home = _Scope(model.where(("services", name, "extends"))[0] or Path("compose.yaml"), services)
        try:
            resolved[name] = _resolve(model, sources, home, name, ())
        except _Failed as exc:
            problems.append(exc.problem)
            continue
        _inherit_origin(origin, name, svc, resolved[name])
    if problems:
        raise SpecError(problems)
    data = {**model.data, "services": resolved}
    return replace(model, data=data, origin=MappingProxyType(origin))


def _resolve(
    model: ComposeModel,
    sources: Mapping[Path, Document],
    scope: _Scope,
    name: str,
    chain: tuple[tuple[Path, str], ...],
) -> dict[str, Any]:
    svc = scope.services[name]
    if not isinstance(svc, dict) or "extends" not in svc:
        return dict(svc) if isinstance(svc, dict) else {}
    at: FieldPath = ("services", chain[0][1] if chain else name, "extends")
    if (scope.file, name) in chain:
        cycle = " -> ".join([n for _, n in chain] + [name])
        raise _Failed(model.problem(at, f"extends cycle: {cycle}", "make one of these services stand alone"))
    base_name, base_file = _target(model, at, svc["extends"])
    base_scope = _scope(model, sources, at, scope, base_file)
    if base_name not in base_scope.services:
        raise _Failed(
            model.problem(
                at,
                f"extends an unknown service {base_name!r} in {base_scope.file}",
                "name a service defined in that file",
            )
        )
    base = _resolve(model, sources, base_scope, base_name, (*chain, (scope.file, name)))
    if base_scope.file.parent != scope.file.parent:
        base = _rebase(base, base_scope.file.parent, scope.file.parent)
    own = {k: v for k, v in svc.items() if k != "extends"}
    return merge_service(base, own)


def _target(model: ComposeModel, at: FieldPath, ext: Any) -> tuple[str, str | None]:
    if isinstance(ext, str) and ext:
        return ext, None
    if isinstance(ext, dict) and isinstance(ext.get("service"), str):
        file = ext.get("file")
        return ext["service"], str(file) if file else None
    raise _Failed(
        model.problem(
            at, "must name a service", "write `extends: base` or `extends: {service: base, file: x.yml}`"
        )
    )


def _scope(
    model: ComposeModel, sources: Mapping[Path, Document], at: FieldPath, scope: _Scope, file: str | None
) -> _Scope:
    if file is None:
        return scope
    path = extends_path(scope.file, file)
    doc = sources.get(path)
    if doc is None:
        raise _Failed(model.problem(at, f"extends file {file} was not read", "check the path"))
    services = normal_top(doc.data).get("services")
    return _Scope(path, services if isinstance(services, dict) else {})


def _rebase(svc: dict[str, Any], base_dir: Path, home_dir: Path) -> dict[str, Any]:
    """Relative paths of a service from another folder, made relative to ours."""

    def move(path: str) -> str:
        if not path.startswith("."):
            return path
        return os.path.relpath(os.path.normpath(base_dir / path), home_dir)

    out = dict(svc)
    build = out.get("build")
    if isinstance(build, str):
        out["build"] = move(build)
    elif isinstance(build, dict) and isinstance(build.get("context"), str):
        out["build"] = {**build, "context": move(build["context"])}
    if isinstance(out.get("volumes"), list):
        out["volumes"] = [_move_volume(v, move) for v in out["volumes"]]
    env_file = out.get("env_file")
    if isinstance(env_file, str):
        out["env_file"] = move(env_file)
    elif isinstance(env_file, list):
        out["env_file"] = [move(e) if isinstance(e, str) else e for e in env_file]
    return out


def _move_volume(volume: Any, move: Any) -> Any:
    if isinstance(volume, str):
        source, sep, rest = volume.partition(":")
        return f"{move(source)}{sep}{rest}" if sep else volume
    if isinstance(volume, dict) and isinstance(volume.get("source"), str):
        return {**volume, "source": move(volume["source"])}
    return volume


def _inherit_origin(
    origin: dict[FieldPath, tuple[Path, int]], name: str, own: Mapping[str, Any], expanded: Mapping[str, Any]
) -> None:
    """Fields a service inherits point at its `extends:` line."""
    line = origin.get(("services", name, "extends"))
    if line is None:
        return
    for key in expanded:
        if key not in own:
            origin[("services", name, key)] = line
