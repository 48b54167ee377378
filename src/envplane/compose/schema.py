"""The types and values of Compose keys, checked on each file before merging. Pure.

compose-go validates every file against the Compose schema before it merges them; this
is the part of that schema envplane relies on: a key it reads holds the type it expects,
or the file is refused with one Problem per wrong value, naming file, line and field.
Keys whose values Compose or the engine parse further (durations, sizes, restart
policies, signals, ...) carry a `Value` shape with values.py's parser for that grammar.
Keys envplane does not read pass untouched, whatever they hold (`docker compose` judges
them), and so do values of a type Compose also accepts (`replicas: "3"` after
interpolation). What model.check_structure checks after merging (services is a mapping
of mappings, ports and volumes are lists that parse) it reports, in its own words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from envplane.compose import values as v
from envplane.errors import Problem
from envplane.spec.source import Document, FieldPath

Found = list[tuple[FieldPath, str, str]]  # (where, what is wrong, hint; "" for the generic one)


class Shape:
    """A set of values: `check` appends (path, message, hint) for each value outside it."""

    what = ""  # "a string", "a list", ...
    loose = False  # another value is left to model.check_structure, which says more

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def check(self, value: Any, path: FieldPath, out: Found) -> None:
        self.refused(value, path, out)

    def refused(self, value: Any, path: FieldPath, out: Found) -> bool:
        """Whether `value` is not of this shape's kind; said in `out` unless the shape is loose."""
        if self.accepts(value):
            return False
        if not self.loose:
            out.append((path, f"must be {self.what}", ""))
        return True


@dataclass(frozen=True)
class Scalar(Shape):
    types: tuple[type, ...]
    what: str = ""

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return bool in self.types
        return isinstance(value, self.types)


@dataclass(frozen=True)
class ListOf(Shape):
    item: Shape
    what: str = "a list"
    loose: bool = False

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list)

    def check(self, value: Any, path: FieldPath, out: Found) -> None:
        if self.refused(value, path, out):
            return
        for index, item in enumerate(value):
            self.item.check(item, (*path, index), out)


@dataclass(frozen=True)
class MapOf(Shape):
    """A mapping whose every value has one shape (services, networks, environment)."""

    value: Shape
    what: str = "a mapping"
    loose: bool = False

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def check(self, value: Any, path: FieldPath, out: Found) -> None:
        if self.refused(value, path, out):
            return
        for key, item in value.items():
            self.value.check(item, (*path, key), out)


@dataclass(frozen=True)
class Obj(Shape):
    """A mapping with known keys; other keys pass. `required` keys must be there."""

    keys: Mapping[str, Shape]
    required: tuple[str, ...] = ()
    what: str = "a mapping"
    loose: bool = False

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def check(self, value: Any, path: FieldPath, out: Found) -> None:
        if self.refused(value, path, out):
            return
        for key in self.required:
            if key not in value:
                out.append(((*path, key), "is required", ""))
        for key, shape in self.keys.items():
            if key in value:
                shape.check(value[key], (*path, key), out)


@dataclass(frozen=True)
class AnyOf(Shape):
    """One of several shapes, chosen by the value's type (a string, or a mapping, ...)."""

    shapes: tuple[Shape, ...]
    what: str

    def accepts(self, value: Any) -> bool:
        return any(s.accepts(value) for s in self.shapes)

    def check(self, value: Any, path: FieldPath, out: Found) -> None:
        for shape in self.shapes:
            if shape.accepts(value):
                shape.check(value, path, out)
                return
        out.append((path, f"must be {self.what}", ""))


@dataclass(frozen=True)
class Value(Shape):
    """A value one of values.py's parsers accepts; a wrong type is its problem too.

    With `shape`, a value of another type is left to that shape's message (and a value it
    accepts is parsed too)."""

    parse: Callable[[Any], object]
    hint: str = ""
    shape: Shape | None = None

    def accepts(self, value: Any) -> bool:
        return self.shape.accepts(value) if self.shape is not None else True

    def check(self, value: Any, path: FieldPath, out: Found) -> None:
        if self.shape is not None:
            before = len(out)
            self.shape.check(value, path, out)
            if len(out) > before:
                return
        try:
            self.parse(value)
        except ValueError as exc:
            out.append((path, str(exc), self.hint))


def any_of(*shapes: Shape) -> AnyOf:
    return AnyOf(shapes, " or ".join(dict.fromkeys(s.what for s in shapes)))


STRING = Scalar((str,), "a string")
NULL = Scalar((type(None),), "empty")
INTEGER = Scalar((int, str), "an integer")  # interpolated values arrive as strings
BOOLEAN = Scalar((bool, str), "true or false")
SCALAR = Scalar((str, int, float, bool, type(None)), "a string, a number or a boolean")
STRINGS = ListOf(STRING, "a list of strings")
# `environment`, `labels`, build `args` ...: a list of KEY=value strings or a mapping of scalars
KEY_VALUES = any_of(ListOf(SCALAR, "a list of KEY=value"), MapOf(SCALAR, "a mapping"))
COMMAND = any_of(STRING, STRINGS, NULL)
MOUNT_REFERENCE = any_of(STRING, Obj({"source": STRING, "target": STRING}))  # service secrets, configs
OPTIONAL_MAPPING = any_of(Obj({}), NULL)
ENV_FILE = any_of(STRING, Obj({"path": STRING, "required": BOOLEAN}, required=("path",)))
DURATION = Value(v.duration, v.DURATION_HINT)
HEALTH_DURATION = Value(v.health_duration, v.DURATION_HINT)
MEMORY = Value(v.memory, v.SIZE_HINT)
CPUS = Value(v.cpus, "write a number such as 0.5 or \"1.5\"")
COUNT = Value(v.at_least(0), "", INTEGER)
UPDATE = Obj({"delay": DURATION, "monitor": DURATION,
              "order": Value(v.one_of("start-first", "stop-first"))})
RESOURCES = Obj({"cpus": CPUS, "memory": MEMORY, "pids": Value(v.integer, "", INTEGER)})
DEPLOY = Obj({
    "replicas": COUNT,
    "resources": Obj({"limits": RESOURCES, "reservations": RESOURCES}),
    "restart_policy": Obj({"condition": Value(v.one_of("none", "on-failure", "any")),
                           "delay": DURATION, "window": DURATION, "max_attempts": COUNT}),
    "update_config": UPDATE,
    "rollback_config": UPDATE,
})
HEALTHCHECK = Obj({
    "test": Value(v.healthcheck_test, "", any_of(STRING, STRINGS)),
    "interval": HEALTH_DURATION,
    "timeout": HEALTH_DURATION,
    "start_period": HEALTH_DURATION,
    "start_interval": HEALTH_DURATION,
    "retries": COUNT,
})
BLKIO_RATES = ListOf(Obj({"path": STRING, "rate": Value(v.non_negative_size, v.SIZE_HINT)}))
ULIMIT = any_of(Value(v.integer, "", Scalar((int, str), "an integer")),
                Obj({"soft": Value(v.integer, "", INTEGER), "hard": Value(v.integer, "", INTEGER)},
                    required=("soft", "hard")))
BUILD = any_of(STRING, Obj({"context": STRING, "dockerfile": STRING, "args": KEY_VALUES,
                            "labels": KEY_VALUES, "target": STRING,
                            "shm_size": Value(v.non_negative_size, v.SIZE_HINT)}))
SERVICE = Obj({
    "image": STRING,
    "container_name": Value(v.container_name, "", STRING),
    "build": BUILD,
    "ports": ListOf(any_of(Scalar((int,), "a port number"), STRING, Obj({})), loose=True),
    "volumes": ListOf(any_of(STRING, Obj({"type": STRING, "source": STRING, "target": STRING,
                                          "tmpfs": Obj({"size": Value(v.non_negative_size, v.SIZE_HINT)})})),
                      loose=True),
    "environment": KEY_VALUES,
    "labels": KEY_VALUES,
    "annotations": KEY_VALUES,
    "sysctls": KEY_VALUES,
    "extra_hosts": any_of(ListOf(Value(v.extra_host, "write name:ip, e.g. db:10.0.0.5", STRING)),
                          MapOf(any_of(Value(v.ip_address, "", STRING), STRINGS))),
    "env_file": any_of(STRING, ListOf(ENV_FILE)),
    "networks": any_of(STRINGS, MapOf(OPTIONAL_MAPPING)),
    "depends_on": any_of(STRINGS, MapOf(any_of(Obj({
        "condition": Value(v.one_of("service_started", "service_healthy", "service_completed_successfully"),
                           "", STRING),
        "required": BOOLEAN}), NULL))),
    "profiles": STRINGS,
    "extends": any_of(STRING, Obj({"service": STRING, "file": STRING})),  # extends.py says the rest
    "deploy": any_of(DEPLOY, NULL),
    "scale": COUNT,
    "healthcheck": HEALTHCHECK,
    "restart": Value(v.restart, "use no, always, unless-stopped, on-failure or on-failure:N"),
    "stop_grace_period": DURATION,
    "stop_signal": Value(v.stop_signal, "use a signal name such as SIGTERM, SIGINT or SIGQUIT"),
    "mem_limit": MEMORY,
    "mem_reservation": MEMORY,
    "memswap_limit": Value(v.memory_swap, v.SIZE_HINT),
    "shm_size": Value(v.non_negative_size, v.SIZE_HINT),
    "cpus": CPUS,
    "pids_limit": Value(v.integer, "", INTEGER),
    "cpu_shares": Value(v.integer, "", INTEGER),
    "oom_score_adj": Value(v.at_least(-1000, 1000), "", INTEGER),
    "cpu_percent": Value(v.at_least(0, 100), "", INTEGER),
    "pull_policy": Value(v.pull_policy),
    "cgroup": Value(v.one_of("host", "private")),
    "working_dir": Value(v.absolute_path, "write the directory inside the container from /"),
    "ulimits": MapOf(ULIMIT),
    "blkio_config": Obj({"device_read_bps": BLKIO_RATES, "device_write_bps": BLKIO_RATES}),
    "network_mode": STRING,
    "pid": STRING,
    "ipc": STRING,
    "command": COMMAND,
    "entrypoint": COMMAND,
    "secrets": ListOf(MOUNT_REFERENCE),
    "configs": ListOf(MOUNT_REFERENCE),
    "logging": Obj({"driver": STRING, "options": any_of(MapOf(SCALAR), NULL)}),
}, loose=True)
FILE_REFERENCE = Obj({"file": STRING, "name": STRING})  # top-level secrets and configs
TOP = Obj({
    "name": STRING,
    "services": MapOf(SERVICE, loose=True),
    "networks": MapOf(any_of(Obj({"name": STRING, "labels": KEY_VALUES}), NULL)),
    "volumes": MapOf(any_of(Obj({"name": STRING, "labels": KEY_VALUES, "driver": STRING,
                                 "driver_opts": any_of(MapOf(SCALAR), NULL)}), NULL)),
    "secrets": MapOf(FILE_REFERENCE),
    "configs": MapOf(FILE_REFERENCE),
})


def type_problems(doc: Document) -> list[Problem]:
    """Every value of the wrong type among the keys envplane reads, as Problems."""
    found: Found = []
    TOP.check(doc.data, (), found)
    return [doc.problem(path, message, hint or _hint(path)) for path, message, hint in found]


def _hint(path: FieldPath) -> str:
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    return f"see the Compose specification for `{key}`" if key else ""
