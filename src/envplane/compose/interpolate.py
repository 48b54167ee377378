"""Compose variable interpolation on a Document. Pure.

Forms: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err},
${VAR:+alt}, ${VAR+alt}, nested (${A:-${B:-x}}), and $$ for a literal $. Mapping keys
are not interpolated (Compose does not either). An unset variable without a default
becomes "" and is reported as a warning, worded as Compose words it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from envplane.errors import Problem, SpecError
from envplane.spec.source import Document, FieldPath

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")
_SYNTAX_HINT = "write $VAR or ${VAR}, and $$ for a literal $"


class InterpolationError(ValueError):
    """A bad template or an unset required variable, in one string."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class _Context:
    lookup: Mapping[str, str]
    warnings: list[str] = field(default_factory=list)
    failures: list[InterpolationError] = field(default_factory=list)


def unset_warning(name: str) -> str:
    return f'The "{name}" variable is not set. Defaulting to a blank string.'


def interpolate(doc: Document, lookup: Mapping[str, str]) -> tuple[Document, list[str]]:
    """A new Document with every string value interpolated, and the warnings."""
    ctx = _Context(lookup)
    problems: list[Problem] = []
    data = _walk(doc.data, (), ctx, doc, problems)
    if problems:
        raise SpecError(problems)
    return replace(doc, data=data), list(dict.fromkeys(ctx.warnings))


def substitute(text: str, lookup: Mapping[str, str]) -> tuple[str, list[str]]:
    """Interpolate one string. Raises InterpolationError on the first failure."""
    ctx = _Context(lookup)
    value = _expand(text, ctx)
    if ctx.failures:
        raise ctx.failures[0]
    return value, ctx.warnings


def _walk(node: Any, path: FieldPath, ctx: _Context, doc: Document, problems: list[Problem]) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, (*path, k), ctx, doc, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, (*path, i), ctx, doc, problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "$" in node:
        return _string(node, path, ctx, doc, problems)
    return node


def _string(text: str, path: FieldPath, ctx: _Context, doc: Document, problems: list[Problem]) -> str:
    ctx.failures = []
    try:
        value = _expand(text, ctx)
    except InterpolationError as exc:
        ctx.failures.append(exc)
        value = text
    problems.extend(doc.problem(path, f.message, f.hint) for f in ctx.failures)
    return value


def _expand(text: str, ctx: _Context) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        start = text.find("$", i)
        if start < 0:
            out.append(text[i:])
            break
        out.append(text[i:start])
        piece, i = _dollar(text, start, ctx)
        out.append(piece)
    return "".join(out)


def _dollar(text: str, start: int, ctx: _Context) -> tuple[str, int]:
    """Expand the `$...` at start; return the text and the index after it."""
    nxt = text[start + 1 : start + 2]
    if nxt == "$":
        return "$", start + 2
    if nxt == "{":
        end = _closing_brace(text, start + 2)
        return _braced(text[start + 2 : end], ctx), end + 1
    match = _NAME.match(text, start + 1)
    if match is None:
        return "$", start + 1  # a `$` before anything but a name stays, as in Compose
    return _value(match.group(0), ctx), match.end()


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError(f"invalid interpolation format for {text!r}: missing '}}'", _SYNTAX_HINT)


def _braced(body: str, ctx: _Context) -> str:
    match = _NAME.match(body)
    if match is None:
        raise InterpolationError(f"invalid interpolation format: ${{{body}}}", _SYNTAX_HINT)
    name, rest = match.group(0), body[match.end() :]
    if not rest:
        return _value(name, ctx)
    for op in _OPERATORS:
        if rest.startswith(op):
            return _operator(name, op, rest[len(op) :], ctx)
    raise InterpolationError(
        f"invalid interpolation format: ${{{body}}}", "use ${VAR:-default}, ${VAR:?error} or ${VAR:+alt}"
    )


def _operator(name: str, op: str, arg: str, ctx: _Context) -> str:
    value = ctx.lookup.get(name)
    unset = value is None or (op.startswith(":") and value == "")
    kind = op[-1]
    if kind == "-":
        return _expand(arg, ctx) if unset else str(value)
    if kind == "+":
        return "" if unset else _expand(arg, ctx)
    if unset:
        ctx.failures.append(_required(name, value, _expand(arg, ctx)))
        return ""
    return str(value)


def _required(name: str, value: str | None, message: str) -> InterpolationError:
    state = "is not set" if value is None else "is empty"
    detail = f": {message}" if message else ""
    return InterpolationError(
        f"required variable {name} {state}{detail}", f"set {name} in the environment or in .env"
    )


def _value(name: str, ctx: _Context) -> str:
    value = ctx.lookup.get(name)
    if value is None:
        ctx.warnings.append(unset_warning(name))
        return ""
    return str(value)
