"""Compose's `.env` file: KEY=value lines, quotes, `export`, comments. Parsing is pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from envplane.compose.interpolate import substitute
from envplane.errors import Problem, SpecError

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=\s*(.*))?$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$$"}


def parse_dotenv(text: str, file: Path, lookup: Mapping[str, str] | None = None) -> dict[str, str]:
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(raw)
        if match is None:
            problems.append(Problem(f"cannot read line: {stripped[:40]!r}", file, number, "",
                                    "write KEY=value"))
            continue
        key, rest = match.group(1), match.group(2)
        if rest is None:
            continue  # `KEY` alone takes the value from the environment in Compose; none here
        try:
            values[key] = _value(rest, {**(lookup or {}), **values})
        except ValueError as exc:
            problems.append(Problem(str(exc), file, number, key))
    if problems:
        raise SpecError(problems)
    return values


def read_dotenv(path: Path, lookup: Mapping[str, str] | None = None) -> dict[str, str]:
    if not path.is_file():
        return {}
    return parse_dotenv(path.read_text(encoding="utf-8"), path, lookup)


def _value(rest: str, known: Mapping[str, str]) -> str:
    rest = rest.strip()
    if rest.startswith("'"):
        end = rest.find("'", 1)
        if end < 0:
            raise ValueError("unterminated single quote")
        return rest[1:end]  # single quotes: literal, no interpolation
    if rest.startswith('"'):
        out, i = [], 1
        while i < len(rest) and rest[i] != '"':
            if rest[i] == "\\" and i + 1 < len(rest):
                out.append(_ESCAPES.get(rest[i + 1], "\\" + rest[i + 1]))
                i += 2
                continue
            out.append(rest[i])
            i += 1
        if i >= len(rest):
            raise ValueError("unterminated double quote")
        return substitute("".join(out), known)[0]
    value = re.split(r"\s+#", rest, maxsplit=1)[0].rstrip()
    return substitute(value, known)[0]
