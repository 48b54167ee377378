"""Structural checks and normal forms of a merged Compose model. Pure.

Only what envplane relies on is checked (services, ports, names); every other key
passes through untouched, `x-*` extensions included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envplane.compose.merge import ComposeModel
from envplane.errors import Problem, SpecError
from envplane.spec.source import FieldPath

_SERVICE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class PortMapping:
    target: int
    published: int | None
    host_ip: str = ""
    protocol: str = "tcp"


class PortSyntaxError(ValueError):
    pass


def parse_port(
    value: Any, model: ComposeModel | None = None, path: FieldPath = ()
) -> list[PortMapping]:
    """Every Compose port form -> one PortMapping per port (ranges expand).

    With a model, a bad port raises SpecError naming the file and line of `path`.
    """
    try:
        return _parse_port(value)
    except PortSyntaxError as exc:
        if model is None:
            raise
        hint = 'e.g. "8080:80" or "127.0.0.1:5432:5432"'
        raise SpecError([model.problem(path, str(exc), hint)]) from None


def _parse_port(value: Any) -> list[PortMapping]:
    if isinstance(value, bool):
        raise PortSyntaxError(f"invalid port {value!r}")
    if isinstance(value, int):
        return [PortMapping(_check(value), None)]
    if isinstance(value, Mapping):
        return _long(value)
    if not isinstance(value, str):
        raise PortSyntaxError(f"invalid port {value!r}")
    text, _, protocol = value.strip().partition("/")
    protocol = protocol or "tcp"
    host_ip = ""
    if text.startswith("["):  # [::1]:80:80
        end = text.index("]")
        host_ip, text = text[1:end], text[end + 2 :]
    parts = text.split(":")
    if len(parts) == 3:
        host_ip, published, target = parts
    elif len(parts) == 2:
        published, target = parts
    elif len(parts) == 1:
        published, target = "", parts[0]
    else:
        raise PortSyntaxError(f"invalid port {value!r}")
    targets = _range(target, value)
    if not published:
        return [PortMapping(t, None, host_ip, protocol) for t in targets]
    sources = _range(published, value)
    if len(sources) == 1 and len(targets) > 1:
        sources = [sources[0] + i for i in range(len(targets))]
    if len(sources) != len(targets):
        raise PortSyntaxError(f"port ranges of {value!r} differ in length")
    return [PortMapping(t, s, host_ip, protocol) for s, t in zip(sources, targets, strict=True)]


def _long(value: Mapping[str, Any]) -> list[PortMapping]:
    target = value.get("target")
    if target is None:
        raise PortSyntaxError("a long-syntax port needs `target`")
    published = value.get("published")
    targets = _range(str(target), target)
    if published in (None, ""):
        sources: list[int | None] = [None] * len(targets)
    else:
        parsed = _range(str(published), published)
        if len(parsed) != len(targets):
            parsed = [parsed[0] + i for i in range(len(targets))]
        sources = list(parsed)
    host_ip = str(value.get("host_ip") or "")
    protocol = str(value.get("protocol") or "tcp")
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


def check_structure(model: ComposeModel) -> None:
    """Services exist and are mappings, names are valid, every port parses."""
    problems: list[Problem] = []
    services = model.data.get("services")
    if not isinstance(services, dict) or not services:
        raise SpecError([model.problem(("services",), "must be a mapping with at least one service")])
    for name, svc in services.items():
        path: FieldPath = ("services", name)
        if not _SERVICE_NAME.match(name):
            problems.append(model.problem(path, f"invalid service name {name!r}",
                                          "use letters, digits, '_', '.' and '-'"))
        if not isinstance(svc, dict):
            problems.append(model.problem(path, "must be a mapping"))
            continue
        if "image" not in svc and "build" not in svc:
            problems.append(model.problem(path, "needs `image` or `build`"))
        ports = svc.get("ports")
        if ports is not None and not isinstance(ports, list):
            problems.append(model.problem((*path, "ports"), "must be a list"))
            continue
        for index, port in enumerate(ports or []):
            try:
                _parse_port(port)
            except PortSyntaxError as exc:
                problems.append(model.problem((*path, "ports", index), str(exc)))
    if problems:
        raise SpecError(problems)
