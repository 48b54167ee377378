"""Compose variable interpolation, as Compose does it, on a Document. Pure.

Forms: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err},
${VAR:+alt}, ${VAR+alt}, nested (${A:-${B:-x}}), and $$ for a literal $. Mapping keys
are not interpolated (Compose does not either). An unset variable without a default
becomes "" and is reported as a warning, as Compose warns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from envplane.errors import Problem, SpecError
from envplane.spec.source import Document, FieldPath

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Failure(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class _Context:
    lookup: Mapping[str, str]
    warnings: list[str]


def interpolate(doc: Document, lookup: Mapping[str, str]) -> tuple[Document, list[str]]:
    ctx = _Context(lookup, [])
    problems: list[Problem] = []
    data = _walk(doc.data, (), ctx, doc, problems)
    if problems:
        raise SpecError(problems)
    return replace(doc, data=data), sorted(set(ctx.warnings))


def substitute(text: str, lookup: Mapping[str, str]) -> tuple[str, list[str]]:
    """Interpolate one string; raises ValueError with a message on a bad or required var."""
    ctx = _Context(lookup, [])
    try:
        return _expand(text, ctx), ctx.warnings
    except _Failure as exc:
        raise ValueError(exc.message) from None


def _walk(node: Any, path: FieldPath, ctx: _Context, doc: Document, problems: list[Problem]) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, (*path, k), ctx, doc, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, (*path, i), ctx, doc, problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "$" in node:
        try:
            return _expand(node, ctx)
        except _Failure as exc:
            problems.append(doc.problem(path, exc.message, exc.hint))
            return node
    return node


def _expand(text: str, ctx: _Context) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2)
            out.append(_braced(text[i + 2 : end], ctx))
            i = end + 1
        else:
            match = _NAME.match(text, i + 1)
            if match is None:
                out.append("$")  # a lone `$` stays, as in Compose
                i += 1
                continue
            out.append(_value(match.group(0), ctx))
            i = match.end()
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise _Failure(f"invalid interpolation format for {text!r}: missing '}}'",
                   "write ${VAR}, or $$ for a literal $")


def _braced(body: str, ctx: _Context) -> str:
    match = _NAME.match(body)
    if match is None:
        raise _Failure(f"invalid interpolation format: ${{{body}}}",
                       "a variable name is letters, digits and _, not starting with a digit")
    name = match.group(0)
    rest = body[match.end():]
    if not rest:
        return _value(name, ctx)
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op):]
            return _operator(name, op, arg, ctx)
    raise _Failure(f"invalid interpolation format: ${{{body}}}", "use ${VAR:-default} and friends")


def _operator(name: str, op: str, arg: str, ctx: _Context) -> str:
    value = ctx.lookup.get(name)
    colon = op.startswith(":")
    unset = value is None or (colon and value == "")
    kind = op[-1]
    if kind == "-":
        return _expand(arg, ctx) if unset else str(value)
    if kind == "+":
        return "" if unset else _expand(arg, ctx)
    if unset:  # "?"
        message = _expand(arg, ctx) if arg else ""
        detail = f": {message}" if message else ""
        state = "is not set" if value is None else "is empty"
        raise _Failure(f"required variable {name} {state}{detail}",
                       f"set {name} in the environment or in .env")
    return str(value)


def _value(name: str, ctx: _Context) -> str:
    value = ctx.lookup.get(name)
    if value is None:
        ctx.warnings.append(f"variable {name} is not set; using an empty string")
        return ""
    return str(value)
