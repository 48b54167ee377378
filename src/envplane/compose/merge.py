"""Merge Compose files in order, like `docker compose -f a -f b`. Pure.

The rules follow compose-go's override merge: mappings merge key by key; most lists
append (ports, expose, dns, extra_hosts, ...); a few keys replace (command, entrypoint,
healthcheck.test); environment, labels, build.args and the like merge as mappings
whether written as lists or mappings; volumes, secrets and configs merge by target or
source. Each field remembers the file and line it came from, for later errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from envplane.errors import Problem
from envplane.spec.source import Document, FieldPath, dotted

Origin = Mapping[FieldPath, tuple[Path, int]]

# Service keys written as `KEY=value` lists or mappings; they merge as mappings.
_MAPPING_LIKE = {"environment", "labels", "annotations", "sysctls"}
_REPLACE = {"command", "entrypoint", "image", "build.dockerfile"}
_BY_KEY = {"volumes": "target", "secrets": "source", "configs": "source"}


@dataclass(frozen=True)
class ComposeModel:
    data: dict[str, Any]
    origin: Origin = field(default_factory=dict)
    files: tuple[Path, ...] = ()

    def where(self, path: FieldPath) -> tuple[Path | None, int | None]:
        for end in range(len(path), -1, -1):
            hit = self.origin.get(tuple(path[:end]))
            if hit is not None:
                return hit
        return (self.files[0] if self.files else None), None

    def problem(self, path: FieldPath, message: str, hint: str = "") -> Problem:
        file, line = self.where(path)
        return Problem(message, file, line, dotted(path), hint)

    @property
    def services(self) -> dict[str, Any]:
        services = self.data.get("services") or {}
        return services if isinstance(services, dict) else {}


def merge(docs: Sequence[Document]) -> ComposeModel:
    data: dict[str, Any] = {}
    origin: dict[FieldPath, tuple[Path, int]] = {}
    for doc in docs:
        for path, line in doc.lines.items():
            origin[path] = (doc.file, line)
        data = _merge_top(data, doc.data if isinstance(doc.data, dict) else {})
    return ComposeModel(data, MappingProxyType(origin), tuple(d.file for d in docs))


def _merge_top(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if key == "services" and isinstance(value, dict) and isinstance(out.get(key), dict):
            services = dict(out[key])
            for name, svc in value.items():
                old = services.get(name)
                services[name] = (
                    merge_service(old, svc) if isinstance(old, dict) and isinstance(svc, dict) else svc
                )
            out[key] = services
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep(out[key], value)
        else:
            out[key] = value
    return out


def merge_service(base: dict[str, Any], over: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        name = f"{prefix}{key}"
        old = out.get(key)
        if old is None or name in _REPLACE:
            out[key] = value
        elif key in _MAPPING_LIKE or name == "build.args":
            out[key] = {**as_mapping(old), **as_mapping(value)}
        elif key in _BY_KEY and isinstance(old, list) and isinstance(value, list):
            out[key] = _merge_by(old, value, _BY_KEY[key])
        elif key == "depends_on":
            out[key] = {**_depends(old), **_depends(value)}
        elif key == "networks":
            out[key] = {**_networks(old), **_networks(value)}
        elif key == "healthcheck" and isinstance(old, dict) and isinstance(value, dict):
            out[key] = {**old, **value}
        elif key == "build" and isinstance(old, dict | str) and isinstance(value, dict | str):
            out[key] = merge_service(_build(old), _build(value), "build.")
        elif isinstance(old, list) and isinstance(value, list):
            out[key] = old + [v for v in value if v not in old]
        elif isinstance(old, dict) and isinstance(value, dict):
            out[key] = _deep(old, value)
        else:
            out[key] = value
    return out


def as_mapping(value: Any) -> dict[str, Any]:
    """`["A=1", "B"]` or `{"A": 1}` -> {"A": "1", "B": None}."""
    if isinstance(value, dict):
        return dict(value)
    out: dict[str, Any] = {}
    for item in value or []:
        key, sep, val = str(item).partition("=")
        out[key] = val if sep else None
    return out


def _merge_by(old: list[Any], new: list[Any], key: str) -> list[Any]:
    def ident(item: Any) -> Any:
        if isinstance(item, dict):
            return item.get(key)
        text = str(item)
        if key == "target":
            parts = text.split(":")
            return parts[1] if len(parts) > 1 else parts[0]
        return text

    merged = {ident(i): i for i in old}
    for item in new:
        merged[ident(item)] = item
    return list(merged.values())


def _depends(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    return {str(v): {"condition": "service_started"} for v in value or []}


def _networks(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    return {str(v): None for v in value or []}


def _build(value: Any) -> dict[str, Any]:
    return {"context": value} if isinstance(value, str) else dict(value)


def _deep(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep(out[key], value)
        else:
            out[key] = value
    return out
