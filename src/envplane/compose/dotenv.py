"""Compose's `.env` file. Parsing is pure; read_dotenv is the one function that reads.

The rules are Compose's: `#` comment lines; an optional `export`; `KEY=value` or
`KEY: value`; a bare `KEY` takes its value from the lookup; unquoted values end at a
` #` comment and are trimmed; single quotes are literal; double quotes may span lines
and understand \\n \\r \\t \\\\ \\" \\$; unquoted and double-quoted values interpolate
${VAR} against the lookup first, then the keys above (Compose lets the process
environment win).

Writing is the inverse for the env files envplane hands to Compose (`env_file_text`):
every value double-quoted, with `\\`, `"`, newline and carriage return escaped and `$`
doubled, so that Compose's parser (compose-go's dotenv: quote loop, then
`expandEscapes`, then interpolation where `$$` is one `$`) gives back exactly the
string written. Every string but one with a NUL (no environment variable can hold
one) or with text that is not Unicode survives.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from envplane.compose.interpolate import InterpolationError, substitute
from envplane.errors import Problem, SpecError

_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_EXPORT = re.compile(r"export[ \t]+")
_INLINE_COMMENT = re.compile(r"[ \t]#")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$$"}


_WRITE_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "$": "$$"})
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Bad(ValueError):
    pass


class NotCarried(ValueError):
    """A value an env file cannot carry; the message names the variable, never the value."""

    hint = "store a value without it, e.g. base64-encoded, and decode it in the app"


def env_file_text(values: Mapping[str, str]) -> str:
    """`KEY="value"` lines, sorted, that Compose reads back as exactly `values`."""
    return "".join(f"{key}={quoted(key, value)}\n" for key, value in sorted(values.items()))


def quoted(key: str, value: str) -> str:
    """value as a double-quoted env file value; NotCarried when no env file can carry it."""
    if not _VAR_NAME.fullmatch(key):
        raise NotCarried(f"{key!r} is not a variable name")
    if "\0" in value:
        raise NotCarried(f"the value of {key} contains a NUL character, which no environment "
                         "variable can hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise NotCarried(f"the value of {key} is not valid Unicode text") from None
    return '"' + value.translate(_WRITE_ESCAPES) + '"'


@dataclass
class _Cursor:
    text: str
    pos: int = 0

    @property
    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def rest_of_line(self) -> str:
        end = self.text.find("\n", self.pos)
        end = len(self.text) if end < 0 else end
        chunk = self.text[self.pos : end]
        self.pos = end
        return chunk


def parse_dotenv(text: str, file: Path, lookup: Mapping[str, str] | None = None) -> dict[str, str]:
    """KEY -> value of a `.env` text; every bad line becomes one Problem naming file:line."""
    values: dict[str, str] = {}
    problems: list[Problem] = []
    cur = _Cursor(text.replace("\r\n", "\n"))
    known = ChainMap(dict(lookup or {}), values)
    while _next_statement(cur):
        line = cur.line
        try:
            _statement(cur, values, known)
        except _Bad as exc:
            problems.append(Problem(str(exc), file, line, "", "write KEY=value, one per line"))
            cur.rest_of_line()
        except InterpolationError as exc:
            problems.append(Problem(exc.message, file, line, "", exc.hint))
    if problems:
        raise SpecError(problems)
    return values


def read_dotenv(path: Path, lookup: Mapping[str, str] | None = None) -> dict[str, str]:
    """The `.env` at path; a missing file is an empty one, as in Compose."""
    if not path.is_file():
        return {}
    return parse_dotenv(path.read_text(encoding="utf-8"), path, lookup)


def _next_statement(cur: _Cursor) -> bool:
    """Skip blank space and comment lines; False at the end of the text."""
    while cur.pos < len(cur.text):
        char = cur.text[cur.pos]
        if char.isspace():
            cur.pos += 1
        elif char == "#":
            cur.rest_of_line()
        else:
            return True
    return False


def _statement(cur: _Cursor, values: dict[str, str], known: Mapping[str, str]) -> None:
    export = _EXPORT.match(cur.text, cur.pos)
    if export:
        cur.pos = export.end()
    key = _key(cur)
    if cur.pos >= len(cur.text) or cur.text[cur.pos] == "\n":
        if key in known:  # a bare KEY inherits from the environment, as in Compose
            values[key] = known[key]
        return
    cur.pos += 1  # past "=" or ":"
    while cur.pos < len(cur.text) and cur.text[cur.pos] in " \t":
        cur.pos += 1
    values[key] = _value(cur, known)


def _key(cur: _Cursor) -> str:
    start = cur.pos
    while cur.pos < len(cur.text) and cur.text[cur.pos] not in "=:\n":
        cur.pos += 1
    key = cur.text[start : cur.pos].strip()
    if not _KEY.fullmatch(key):
        bad = next((c for c in key if not _KEY.match(c)), key[:1])
        raise _Bad(f"unexpected character {bad!r} in variable name {key!r}")
    return key


def _value(cur: _Cursor, known: Mapping[str, str]) -> str:
    quote = cur.text[cur.pos : cur.pos + 1]
    if quote not in ("'", '"'):
        raw = _INLINE_COMMENT.split(cur.rest_of_line(), maxsplit=1)[0].strip()
        return substitute(raw, known)[0]
    end = _closing_quote(cur.text, cur.pos + 1, quote)
    if end < 0:
        raise _Bad(f"unterminated quoted value {cur.rest_of_line()}")
    raw = cur.text[cur.pos + 1 : end]
    cur.pos = end + 1
    cur.rest_of_line()  # whatever follows the closing quote is ignored, as in Compose
    if quote == "'":
        return raw
    return substitute(_unescape(raw), known)[0]


def _closing_quote(text: str, start: int, quote: str) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1


def _unescape(raw: str) -> str:
    # `\$` becomes `$$` so that interpolation then leaves one literal `$`.
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), raw, flags=re.DOTALL)
