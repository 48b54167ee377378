"""Structural checks and normal forms of a merged Compose model. Pure.

Only what envplane relies on is checked (services, names, ports, volumes); every other
key passes through untouched, `x-*` extensions included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envplane.compose.merge import ComposeModel
from envplane.errors import Problem, SpecError
from envplane.spec.source import FieldPath

_SERVICE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_PORT_HINT = 'write "8080:80", "127.0.0.1:5432:5432" or {target: 80, published: 8080}'
_VOLUME_HINT = 'write "name:/path", "./dir:/path:ro" or {type: bind, source: ./dir, target: /path}'


@dataclass(frozen=True)
class PortMapping:
    """One container port and the host port it is published on (None: not published)."""

    target: int
    published: int | None
    host_ip: str = ""
    protocol: str = "tcp"


@dataclass(frozen=True)
class VolumeMount:
    """One service volume; `long` is the long-syntax form, with every option kept."""

    kind: str  # "volume", "bind", "tmpfs" or "anonymous"
    source: str
    target: str
    read_only: bool = False
    long: Mapping[str, Any] = field(default_factory=dict)


class PortSyntaxError(ValueError):
    pass


class VolumeSyntaxError(ValueError):
    pass


def parse_port(value: Any, model: ComposeModel | None = None, path: FieldPath = ()) -> list[PortMapping]:
    """Every Compose port form -> one PortMapping per port (ranges expand).

    With a model, a bad port raises SpecError naming the file and line of `path`;
    without one it raises PortSyntaxError.
    """
    try:
        return _parse_port(value)
    except PortSyntaxError as exc:
        if model is None:
            raise
        raise SpecError([model.problem(path, str(exc), _PORT_HINT)]) from None


def _parse_port(value: Any) -> list[PortMapping]:
    if isinstance(value, bool) or not isinstance(value, int | str | Mapping):
        raise PortSyntaxError(f"invalid port {value!r}")
    if isinstance(value, int):
        return [PortMapping(_check(value), None)]
    if isinstance(value, Mapping):
        return _long_port(value)
    text, _, protocol = value.strip().partition("/")
    host_ip, published, target = _split_port(text, value)
    return _pair(target, published, host_ip, protocol or "tcp", value)


def _split_port(text: str, original: str) -> tuple[str, str, str]:
    host_ip = ""
    if text.startswith("["):  # [::1]:80:80
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise PortSyntaxError(f"invalid port {original!r}")
        host_ip, text = text[1:end], text[end + 2 :]
    parts = text.split(":")
    if len(parts) == 1:
        return host_ip, "", parts[0]
    if len(parts) == 2:
        return host_ip, parts[0], parts[1]
    if len(parts) == 3 and not host_ip:
        return parts[0], parts[1], parts[2]
    raise PortSyntaxError(f"invalid port {original!r}")


def _long_port(value: Mapping[str, Any]) -> list[PortMapping]:
    target = value.get("target")
    if target is None:
        raise PortSyntaxError("a long-syntax port needs `target`")
    published = value.get("published")
    host_ip = str(value.get("host_ip") or "")
    protocol = str(value.get("protocol") or "tcp")
    return _pair(str(target), "" if published is None else str(published), host_ip, protocol, value)


def _pair(target: str, published: str, host_ip: str, protocol: str, original: Any) -> list[PortMapping]:
    targets = _range(target, original)
    if not published:
        return [PortMapping(t, None, host_ip, protocol) for t in targets]
    sources = _range(published, original)
    if len(sources) == 1 and len(targets) > 1:
        sources = [sources[0] + i for i in range(len(targets))]
    if len(sources) != len(targets):
        raise PortSyntaxError(f"port ranges of {original!r} differ in length")
    return [PortMapping(t, s, host_ip, protocol) for s, t in zip(sources, targets, strict=True)]


def _range(text: str, original: Any) -> list[int]:
    match = _RANGE.match(text.strip())
    if match is None:
        raise PortSyntaxError(f"invalid port {original!r}")
    start = _check(int(match.group(1)))
    end = _check(int(match.group(2))) if match.group(2) else start
    if end < start:
        raise PortSyntaxError(f"invalid port range {original!r}")
    return list(range(start, end + 1))


def _check(port: int) -> int:
    if not 1 <= port <= 65535:
        raise PortSyntaxError(f"port {port} is out of range 1-65535")
    return port


def parse_volume(value: Any) -> VolumeMount:
    """A service volume in short (`src:/dst:ro`) or long syntax -> VolumeMount."""
    if isinstance(value, Mapping):
        return _long_volume(value)
    if not isinstance(value, str) or not value.strip():
        raise VolumeSyntaxError(f"invalid volume {value!r}")
    parts = value.strip().split(":")
    if len(parts) == 1:
        return _long_volume({"type": "volume", "target": parts[0]})
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise VolumeSyntaxError(f"invalid volume {value!r}")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    long: dict[str, Any] = {"type": kind, "source": source, "target": target}
    if "ro" in options:
        long["read_only"] = True
    return _long_volume(long)


def _long_volume(value: Mapping[str, Any]) -> VolumeMount:
    kind = str(value.get("type") or "volume")
    target = value.get("target")
    if not isinstance(target, str) or not target:
        raise VolumeSyntaxError("a volume needs a `target` path in the container")
    source = str(value.get("source") or "")
    if kind == "volume" and not source:
        kind = "anonymous"
    if kind not in ("volume", "bind", "tmpfs", "anonymous", "npipe", "cluster", "image"):
        raise VolumeSyntaxError(f"unknown volume type {kind!r}")
    return VolumeMount(kind, source, target, bool(value.get("read_only")), dict(value))


def check_structure(model: ComposeModel) -> None:
    """Services are a mapping of mappings with valid names, an image or a build,
    and ports and volumes that parse. Every mistake becomes one Problem."""
    services = model.data.get("services")
    if not isinstance(services, dict) or not services:
        raise SpecError(
            [model.problem(("services",), "must be a mapping with at least one service", "add `services:`")]
        )
    problems: list[Problem] = []
    for name, svc in services.items():
        problems += _service_problems(model, name, svc)
    if problems:
        raise SpecError(problems)


def _service_problems(model: ComposeModel, name: str, svc: Any) -> list[Problem]:
    path: FieldPath = ("services", name)
    problems: list[Problem] = []
    if not _SERVICE_NAME.match(name):
        problems.append(
            model.problem(path, f"invalid service name {name!r}", "use letters, digits, '_', '.' and '-'")
        )
    if not isinstance(svc, dict):
        return [*problems, model.problem(path, "must be a mapping", "write the service's keys under it")]
    if "image" not in svc and "build" not in svc:
        problems.append(
            model.problem(path, "needs `image` or `build`", "add `image: name:tag` or `build: .`")
        )
    problems += _list_problems(model, (*path, "ports"), svc.get("ports"), _parse_port, _PORT_HINT)
    problems += _list_problems(model, (*path, "volumes"), svc.get("volumes"), parse_volume, _VOLUME_HINT)
    return problems


def _list_problems(model: ComposeModel, path: FieldPath, items: Any, parse: Any, hint: str) -> list[Problem]:
    if items is None:
        return []
    if not isinstance(items, list):
        return [model.problem(path, "must be a list", hint)]
    problems = []
    for index, item in enumerate(items):
        try:
            parse(item)
        except (PortSyntaxError, VolumeSyntaxError) as exc:
            problems.append(model.problem((*path, index), str(exc), hint))
    return problems
