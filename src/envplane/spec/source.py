"""Read YAML into plain Python data plus a map of where each field stands in the file.

Everything after this step works on plain dicts and lists; the line map lets any later
step (interpolation, validation, consistency checks) name the file and line of a field.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from envplane.errors import Problem, SpecError

FieldPath = tuple[str | int, ...]


def dotted(path: FieldPath) -> str:
    """("environments", "staging", "ports", 0) -> "environments.staging.ports[0]"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = str(part) or '""'  # an empty key is still a place in the file
            out += f".{name}" if out else name
    return out


@dataclass(frozen=True)
class Document:
    """A parsed YAML file: its data and the 1-based line of every field in it."""

    file: Path
    data: Any
    lines: Mapping[FieldPath, int] = field(default_factory=dict)

    def line_of(self, path: FieldPath) -> int | None:
        """The line of path, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def problem(self, path: FieldPath, message: str, hint: str = "") -> Problem:
        return Problem(message, self.file, self.line_of(path), dotted(path), hint)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def parse_yaml(text: str, file: Path) -> Document:
    """Parse YAML text. Syntax errors and empty files become a SpecError naming the line."""
    if not text.strip():
        raise SpecError(
            [Problem("the file is empty", file, None, "", "write at least the required keys")]
        )
    try:
        raw = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "invalid YAML"
        raise SpecError(
            [Problem(f"YAML syntax error: {what}", file, line, "", "check indentation and quoting")]
        ) from None
    except YAMLError as exc:
        raise SpecError([Problem(f"YAML syntax error: {exc}", file)]) from None
    if raw is None:
        raise SpecError([Problem("the file holds no data (only comments?)", file)])
    lines: dict[FieldPath, int] = {(): 1}
    data = _plain(raw, (), lines)
    return Document(file=file, data=data, lines=lines)


def load_yaml(file: Path) -> Document:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            [Problem("file not found", file, hint="check the path, or run `envplane init`")]
        ) from None
    except OSError as exc:
        raise SpecError([Problem(f"cannot read the file: {exc.strerror}", file)]) from None
    except ValueError as exc:  # a NUL byte in the path, or bytes that are not UTF-8
        raise SpecError([Problem(f"cannot read the file: {exc}", file)]) from None
    return parse_yaml(text, file)


def _plain(node: Any, path: FieldPath, lines: dict[FieldPath, int]) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            skey = key if isinstance(key, str) else str(_plain(key, path, lines))
            child = (*path, skey)
            pos = _key_line(node, key)
            if pos is not None:
                lines[child] = pos
            out[skey] = _plain(value, child, lines)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            child = (*path, index)
            with contextlib.suppress(KeyError, IndexError, TypeError):
                lines[child] = node.lc.item(index)[0] + 1
            items.append(_plain(value, child, lines))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, datetime.date | datetime.datetime):
        return node.isoformat()
    if isinstance(node, str):
        return str(node)
    return str(node)


def _key_line(node: CommentedMap, key: Any) -> int | None:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (KeyError, TypeError, IndexError):
        # Keys brought in through a `<<` merge have no position of their own here.
        return None


def walk(data: Any, path: FieldPath = ()) -> Iterator[tuple[FieldPath, Any]]:
    """Every (path, value) in data, depth first, parents before children."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from walk(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from walk(value, (*path, index))
