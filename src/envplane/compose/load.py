"""Compose files: read them (I/O), then build one model per env instance (pure).

build_model runs Compose's loading steps in order: interpolate each file, merge them,
expand `extends`, select profiles, check the structure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from envplane.compose.interpolate import interpolate
from envplane.compose.merge import ComposeModel, merge, merge_service
from envplane.compose.model import check_structure
from envplane.errors import Problem, SpecError
from envplane.spec.source import Document, load_yaml


def read_compose_files(paths: Sequence[Path]) -> list[Document]:
    """Read each file, and any file an `extends: {file: ...}` names, once each."""
    docs: list[Document] = []
    for path in paths:
        doc = load_yaml(path)
        if not isinstance(doc.data, dict):
            raise SpecError([doc.problem((), "a Compose file must be a mapping (services: ...)")])
        docs.append(doc)
    return docs


def build_model(
    docs: Sequence[Document], lookup: Mapping[str, str], profiles: Iterable[str]
) -> tuple[ComposeModel, list[str]]:
    warnings: list[str] = []
    interpolated = []
    problems: list[Problem] = []
    for doc in docs:
        try:
            done, found = interpolate(doc, lookup)
        except SpecError as exc:
            problems += exc.problems
            continue
        interpolated.append(done)
        warnings += found
    if problems:
        raise SpecError(problems)
    model = merge(interpolated)
    model = expand_extends(model, {d.file: d for d in interpolated})
    model = select_profiles(model, set(profiles))
    check_structure(model)
    return model, sorted(set(warnings))


def expand_extends(model: ComposeModel, docs: Mapping[Path, Document]) -> ComposeModel:
    services = model.services
    if not any(isinstance(s, dict) and "extends" in s for s in services.values()):
        return model
    resolved: dict[str, Any] = {}
    for name in services:
        resolved[name] = _extended(name, services, model, docs, ())
    return replace(model, data={**model.data, "services": resolved})


def _extended(
    name: str,
    services: Mapping[str, Any],
    model: ComposeModel,
    docs: Mapping[Path, Document],
    chain: tuple[str, ...],
) -> Any:
    svc = services[name]
    if not isinstance(svc, dict) or "extends" not in svc:
        return svc
    if name in chain:
        raise SpecError([model.problem(("services", name, "extends"),
                                       "extends cycle: " + " -> ".join((*chain, name)))])
    ext = svc["extends"]
    base_name = ext if isinstance(ext, str) else ext.get("service")
    base_file = None if isinstance(ext, str) else ext.get("file")
    if base_file:
        source_file = model.where(("services", name, "extends"))[0]
        path = ((source_file.parent if source_file else Path.cwd()) / base_file).resolve()
        other = docs.get(path) or load_yaml(path)
        pool = (other.data or {}).get("services") or {}
    else:
        pool = services
    if base_name not in pool:
        raise SpecError([model.problem(("services", name, "extends"),
                                       f"extends an unknown service {base_name!r}")])
    base = _extended(base_name, pool, model, docs, (*chain, name))
    own = {k: v for k, v in svc.items() if k != "extends"}
    return merge_service(dict(base), own)


def select_profiles(model: ComposeModel, active: set[str]) -> ComposeModel:
    """Keep services without profiles and those whose profiles are active."""
    services = model.services
    kept = {
        name: svc
        for name, svc in services.items()
        if not (isinstance(svc, dict) and svc.get("profiles")) or active & set(svc["profiles"])
    }
    if len(kept) == len(services):
        return model
    problems = []
    for name, svc in kept.items():
        deps = svc.get("depends_on") if isinstance(svc, dict) else None
        for dep in (deps or []):
            if dep in services and dep not in kept:
                problems.append(model.problem(
                    ("services", name, "depends_on"),
                    f"service {name} depends on {dep}, which profile selection left out",
                    f"add {dep}'s profile to the env's `profiles`, or drop the dependency",
                ))
    if problems:
        raise SpecError(problems)
    return replace(model, data={**model.data, "services": kept})
