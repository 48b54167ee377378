"""Merge Compose files in order, like `docker compose -f a -f b`. Pure.

The rules are compose-go's (override/merge.go and uncity.go): mappings merge key by
key; sequences append, dropping exact repeats (ports, expose, dns, extra_hosts, ...);
command, entrypoint and healthcheck.test replace; environment, labels, annotations,
sysctls and build.args merge as mappings whether written as lists or mappings (the
merged model always holds the mapping); volumes merge by target, secrets and configs
by target or source; depends_on and networks merge as mappings; logging options merge
only when the driver is the same. Each field remembers the file and line it came
from, so later steps can still name them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from envplane.compose.normal import normal_service, volume_target
from envplane.errors import Problem
from envplane.spec.source import Document, FieldPath, dotted

Origin = Mapping[FieldPath, tuple[Path, int]]

_MAPPINGS = {"environment", "labels", "annotations", "sysctls", "depends_on", "networks"}
_REPLACE = {"command", "entrypoint"}


@dataclass(frozen=True)
class ComposeModel:
    """The merged Compose data, and where each field of it was written."""

    data: dict[str, Any]
    origin: Origin = field(default_factory=dict)
    files: tuple[Path, ...] = ()

    def where(self, path: FieldPath) -> tuple[Path | None, int | None]:
        """The file and line of path, or of its nearest ancestor that has one."""
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
    """One model from the files in order; later files win."""
    data: dict[str, Any] = {}
    for doc in docs:
        data = merge_top(data, normal_top(doc.data))
    origin = compute_origin(data, docs)
    return ComposeModel(data, MappingProxyType(origin), tuple(d.file for d in docs))


def normal_top(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {}
    services = data.get("services")
    if not isinstance(services, dict):
        return dict(data)
    normal = {n: normal_service(s) if isinstance(s, dict) else s for n, s in services.items()}
    return {**data, "services": normal}


def merge_top(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if key == "services" and isinstance(old, dict) and isinstance(value, dict):
            out[key] = _merge_services(old, value)
        else:
            out[key] = deep(old, value)
    return out


def _merge_services(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name, svc in over.items():
        old = out.get(name)
        if isinstance(old, dict) and isinstance(svc, dict):
            out[name] = merge_service(old, svc)
        else:
            out[name] = deep(old, svc)
    return out


def merge_service(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """One service over another, by Compose's rules; both already in normal form."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        rule = _RULES.get(key, deep)
        if old is None or value is None:
            out[key] = old if value is None else value  # a null override keeps the base
        else:
            out[key] = rule(old, value)
    return out


def deep(old: Any, new: Any) -> Any:
    """Compose's default: mappings merge, sequences append (without repeats), scalars replace."""
    if new is None:
        return old
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for key, value in new.items():
            out[key] = deep(out.get(key), value) if key in out else value
        return out
    if isinstance(old, list) and isinstance(new, list):
        return old + [item for item in new if item not in old]
    return new


def _replace(_old: Any, new: Any) -> Any:
    return new


def _mapping(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **new}
    return new


def _healthcheck(old: Any, new: Any) -> Any:
    return {**old, **new} if isinstance(old, dict) and isinstance(new, dict) else new


def _logging(old: Any, new: Any) -> Any:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    if "driver" in old and "driver" in new and old["driver"] != new["driver"]:
        return new
    return deep(old, new)


def _build(old: Any, new: Any) -> Any:
    old, new = _as_build(old), _as_build(new)
    out = dict(old)
    for key, value in new.items():
        merged = out.get(key)
        if merged is None:
            out[key] = value
        elif key in ("args", "labels", "additional_contexts"):
            out[key] = _mapping(merged, value)
        else:
            out[key] = deep(merged, value)
    return out


def _as_build(value: Any) -> dict[str, Any]:
    return {"context": value} if isinstance(value, str) else dict(value or {})


def _unique_by(key: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    def merge_lists(old: Any, new: Any) -> Any:
        if not (isinstance(old, list) and isinstance(new, list)):
            return new
        merged = {key(item): item for item in old}
        for item in new:
            merged[key(item)] = item  # replaces in place: dicts keep the first position
        return list(merged.values())

    return merge_lists


def _mount_key(default_dir: str) -> Callable[[Any], Any]:
    def key(item: Any) -> Any:
        if isinstance(item, dict):
            return item.get("target") or f"{default_dir}/{item.get('source')}"
        return f"{default_dir}/{item}"

    return key


_RULES: dict[str, Callable[[Any, Any], Any]] = {
    **{k: _replace for k in _REPLACE},
    **{k: _mapping for k in _MAPPINGS},
    "healthcheck": _healthcheck,
    "logging": _logging,
    "build": _build,
    "volumes": _unique_by(volume_target),
    "secrets": _unique_by(_mount_key("/run/secrets")),
    "configs": _unique_by(_mount_key("")),
}


def compute_origin(data: Any, docs: Sequence[Document]) -> dict[FieldPath, tuple[Path, int]]:
    """Where each field of the merged data was written; the last file that wrote it wins.

    List items are found by value, since merging moves them to other indexes.
    """
    origin: dict[FieldPath, tuple[Path, int]] = {}
    for doc in docs:
        for path, line in doc.lines.items():
            if not any(isinstance(part, int) for part in path):
                origin[path] = (doc.file, line)
        origin.update(_keyed_items(doc))
    _list_items(data, (), docs, origin)
    return origin


def _keyed_items(doc: Document) -> dict[FieldPath, tuple[Path, int]]:
    """`environment: [A=1]` written as a list is held as a mapping: A gets the item's line."""
    out: dict[FieldPath, tuple[Path, int]] = {}
    services = doc.data.get("services") if isinstance(doc.data, dict) else None
    for name, svc in (services or {}).items() if isinstance(services, dict) else ():
        for key in _MAPPINGS & set(svc or {}) if isinstance(svc, dict) else ():
            items = svc[key]
            for index, item in enumerate(items if isinstance(items, list) else []):
                line = doc.lines.get(("services", name, key, index))
                if line is not None:
                    item_key = str(item).partition("=")[0]
                    out[("services", name, key, item_key)] = (doc.file, line)
    return out


def _list_items(
    node: Any, path: FieldPath, docs: Sequence[Document], origin: dict[FieldPath, tuple[Path, int]]
) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _list_items(value, (*path, key), docs, origin)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _item_origin(item, (*path, index), docs, origin)


def _item_origin(
    item: Any, path: FieldPath, docs: Sequence[Document], origin: dict[FieldPath, tuple[Path, int]]
) -> None:
    for doc in reversed(docs):
        written = _at(doc.data, path[:-1])
        if isinstance(written, list) and item in written:
            source = (*path[:-1], written.index(item))
            for sub, line in doc.lines.items():
                if sub[: len(source)] == source:
                    origin[(*path, *sub[len(source) :])] = (doc.file, line)
            return


def _at(data: Any, path: FieldPath) -> Any:
    for part in path:
        if isinstance(part, int):
            return None  # lists inside list items keep their own order; not followed
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data
