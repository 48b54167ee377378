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
from envplane.compose.values import ip_address
from envplane.errors import Problem, SpecError
from envplane.spec.source import FieldPath

_SERVICE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_LONG_PORT_KEYS = frozenset({"name", "mode", "host_ip", "target", "published", "protocol", "app_protocol"})
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
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class VolumeSyntaxError(ValueError):
    pass


def parse_port(value: Any, model: ComposeModel | None = None, path: FieldPath = ()) -> list[PortMapping]:
    """Every Compose port form -> one PortMapping per port (ranges expand).

    Short syntax follows the grammar Compose parses it with ([IP:][HOST:]CONTAINER[/PROTOCOL],
    IPv6 bare or in brackets, ranges of equal length); long syntax takes Compose's keys, and
    refuses what the engine would refuse on `up` (a protocol other than tcp, udp or sctp, a
    published port that is no port). A host port of 0 or none lets the engine pick one
    (published None). A host range for one container port (Compose: any free port of it) is
    refused: envplane gives each env its own fixed ports.

    With a model, a bad port raises SpecError naming the file and line of `path`;
    without one it raises PortSyntaxError.
    """
    try:
        return _parse_port(value)
    except PortSyntaxError as exc:
        if model is None:
            raise
        raise SpecError([model.problem(path, str(exc), exc.hint or _PORT_HINT)]) from None


def _parse_port(value: Any) -> list[PortMapping]:
    if isinstance(value, bool) or not isinstance(value, int | str | Mapping):
        raise PortSyntaxError(f"invalid port {value!r}")
    if isinstance(value, Mapping):
        return _long_port(value)
    if isinstance(value, int):
        return [PortMapping(_container_port(str(value), value), None)]
    return _short_port(value)


def _short_port(text: str) -> list[PortMapping]:
    parts = text.split(":")
    host_ip, published = "", ""
    if len(parts) == 2:
        published = parts[0]
    elif len(parts) > 2:  # an IPv6 address holds colons: the last two parts are the ports
        host_ip, published = ":".join(parts[:-2]), parts[-2]
    container, _, protocol = parts[-1].partition("/")
    if not container:
        raise PortSyntaxError(f"invalid port {text!r}: no container port")
    if host_ip.startswith("["):
        if not host_ip.endswith("]"):
            raise PortSyntaxError(f"invalid port {text!r}: an address in brackets comes before "
                                  "a host port and a container port", "write \"[::1]:8080:80\"")
        host_ip = host_ip[1:-1]
    if host_ip:
        _ip(host_ip, text)
    return _pair(_range(container, text, "container"), published, host_ip, _protocol(protocol or "tcp", text),
                 text)


def _long_port(value: Mapping[str, Any]) -> list[PortMapping]:
    unknown = [k for k in value if not (isinstance(k, str) and (k in _LONG_PORT_KEYS or k.startswith("x-")))]
    if unknown:
        raise PortSyntaxError(f"unknown key {unknown[0]!r} in a long-syntax port",
                              "use target, published, host_ip, protocol, mode, name, app_protocol")
    if value.get("target") is None:
        raise PortSyntaxError("a long-syntax port needs `target`")
    target = _container_port(value["target"], value)
    host_ip = value.get("host_ip")
    if host_ip is not None:
        _ip(host_ip, value)
    mode = value.get("mode", "ingress")
    if mode not in ("host", "ingress"):
        raise PortSyntaxError(f"invalid port mode {mode!r}: host or ingress")
    published = value.get("published")
    if published is not None and (isinstance(published, bool) or not isinstance(published, int | str)):
        raise PortSyntaxError(f"invalid host port {published!r}")
    text = "" if published is None else str(published)
    return _pair([target], text, host_ip or "", _protocol(value.get("protocol", "tcp"), value), value)


def _in(original: Any, part: str = "") -> str:
    """Where a bad part stands: the short-syntax string, or nothing for a long-syntax port
    (the field names it) or when the part is the whole."""
    return f" in {original!r}" if isinstance(original, str) and original != part else ""


def _pair(targets: list[int], published: str, host_ip: str, protocol: str, original: Any
          ) -> list[PortMapping]:
    sources = _range(published, original, "host") if published else []
    if sources == [0]:
        sources = []  # host port 0: the engine picks one, as with none
    if not sources:
        return [PortMapping(t, None, host_ip, protocol) for t in targets]
    if len(sources) != len(targets):
        if len(targets) == 1:
            raise PortSyntaxError(
                f"host port range {published} for one container port{_in(original)}: the engine "
                "would pick any free port of it",
                "publish one host port (\"8080:80\"); envplane gives each env its own fixed ports")
        raise PortSyntaxError(f"port ranges{_in(original)} differ in length")
    return [PortMapping(t, s, host_ip, protocol) for s, t in zip(sources, targets, strict=True)]


def _range(text: str, original: Any, which: str) -> list[int]:
    match = _RANGE.fullmatch(text)
    if match is None:
        raise PortSyntaxError(f"invalid {which} port {text!r}{_in(original, text)}")
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else start
    for port in (start, end):
        if port > 65535 or (port == 0 and (which == "container" or end != start)):
            raise PortSyntaxError(f"port {port} is out of range 1-65535")
    if end < start:
        raise PortSyntaxError(f"invalid port range {text!r}{_in(original, text)}")
    return list(range(start, end + 1))


def _container_port(value: Any, original: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PortSyntaxError(f"invalid container port {value!r}{_in(original)}")
    ports = _range(str(value), original, "container")
    if len(ports) != 1:
        raise PortSyntaxError(f"a long-syntax `target` is one port, not {value!r}",
                              "write one port per entry, or the short form \"8080-8081:80-81\"")
    return ports[0]


def _protocol(value: Any, original: Any) -> str:
    protocol = value.lower() if isinstance(value, str) else value
    if protocol in ("tcp", "udp", "sctp"):
        return str(protocol)
    hint = ""
    if isinstance(original, str) and isinstance(value, str) and value.isdigit():
        host = original.rpartition("/")[0]
        hint = f"a host port maps to a container port with a colon: \"{host}:{value}\""
    raise PortSyntaxError(f"invalid protocol {value!r}{_in(original)}: tcp, udp or sctp", hint)


def _ip(value: Any, original: Any) -> None:
    try:
        ip_address(value if isinstance(value, str) else "?")
    except ValueError:
        raise PortSyntaxError(f"invalid IP address {value!r}{_in(original)}",
                              "write an IPv4 or IPv6 address, e.g. 127.0.0.1 or ::1") from None


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
    for key, parse, hint in (("ports", _parse_port, _PORT_HINT), ("volumes", parse_volume, _VOLUME_HINT)):
        if key in svc:  # `volumes:` left empty is null, which Compose refuses too
            problems += _list_problems(model, (*path, key), svc[key], parse, hint)
    return problems


def _list_problems(model: ComposeModel, path: FieldPath, items: Any, parse: Any, hint: str) -> list[Problem]:
    if not isinstance(items, list):
        return [model.problem(path, "must be a list", hint)]
    problems = []
    for index, item in enumerate(items):
        try:
            parse(item)
        except PortSyntaxError as exc:
            problems.append(model.problem((*path, index), str(exc), exc.hint or hint))
        except VolumeSyntaxError as exc:
            problems.append(model.problem((*path, index), str(exc), hint))
    return problems
