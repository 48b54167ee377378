"""Compose files: read them (the I/O), then build one model per env instance (pure).

build_model runs Compose's loading steps in order: interpolate each file and check the
types of the keys envplane reads, merge them, expand `extends`, select profiles, check
the structure.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envplane.compose.extends import expand_extends, extends_path
from envplane.compose.interpolate import interpolate
from envplane.compose.merge import ComposeModel, merge
from envplane.compose.model import check_structure
from envplane.compose.profiles import select_profiles
from envplane.compose.schema import type_problems
from envplane.errors import Problem, SpecError
from envplane.spec.source import Document, FieldPath, load_yaml

__all__ = ["ComposeModel", "ExtendsSource", "build_model", "read_compose_files"]


@dataclass(frozen=True)
class ExtendsSource(Document):
    """A file read only because an `extends: {file: ...}` names it; it is not merged."""


def read_compose_files(paths: Sequence[Path]) -> list[Document]:
    """The files in order, then each file an `extends.file` names (once, as ExtendsSource)."""
    docs = [_read(path) for path in paths]
    seen = {_normal(p) for p in paths}
    queue = list(docs)
    while queue:
        doc = queue.pop(0)
        for path, field in _extends_files(doc):
            if path in seen:
                continue
            seen.add(path)
            other = _read_extended(doc, field, path)
            extra = ExtendsSource(other.file, other.data, other.lines)
            docs.append(extra)
            queue.append(extra)
    return docs


def _read_extended(doc: Document, field: FieldPath, path: Path) -> Document:
    """A file an `extends.file` names; what is wrong with it is that field's problem too."""
    try:
        return _read(path)
    except SpecError as exc:
        first = exc.problems[0]
        if first.field or first.line is not None:
            raise  # the file was read: its own problem names its own place
        raise SpecError([doc.problem(field, f"extends file {path}: {first.message}", first.hint)]) from None


def _normal(path: Path) -> Path:
    return Path(os.path.normpath(path))


def _read(path: Path) -> Document:
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise SpecError([doc.problem((), "a Compose file must be a mapping (services: ...)")])
    return doc


def _extends_files(doc: Document) -> Iterator[tuple[Path, FieldPath]]:
    services = doc.data.get("services")
    for name, svc in services.items() if isinstance(services, dict) else ():
        ext: Any = svc.get("extends") if isinstance(svc, dict) else None
        if isinstance(ext, dict) and isinstance(ext.get("file"), str):
            yield extends_path(doc.file, ext["file"]), ("services", name, "extends", "file")


def build_model(
    docs: Sequence[Document], lookup: Mapping[str, str], profiles: Iterable[str]
) -> tuple[ComposeModel, list[str]]:
    """Interpolate, merge, expand extends, select profiles, check: the model and the warnings."""
    interpolated, warnings = _interpolate_all(docs, lookup)
    merged = merge([d for d in interpolated if not isinstance(d, ExtendsSource)])
    sources = {_normal(d.file): d for d in interpolated}
    model = expand_extends(merged, sources)
    model = select_profiles(model, profiles)
    check_structure(model)
    return model, warnings


def _interpolate_all(docs: Sequence[Document], lookup: Mapping[str, str]) -> tuple[list[Document], list[str]]:
    """Each file interpolated, then its types checked (before any merging, as compose-go)."""
    done: list[Document] = []
    warnings: list[str] = []
    problems: list[Problem] = []
    for doc in docs:
        try:
            result, found = interpolate(doc, lookup)
        except SpecError as exc:
            problems += exc.problems
            continue
        problems += type_problems(result)
        done.append(result)
        warnings += found
    if problems:
        raise SpecError(problems)
    return done, list(dict.fromkeys(warnings))
