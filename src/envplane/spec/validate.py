"""Turn pydantic's validation errors into Problems that name file, line and field."""

from __future__ import annotations

import difflib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from envplane.errors import Problem, SpecError
from envplane.spec.source import Document, FieldPath

M = TypeVar("M", bound=BaseModel)

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}


def validate(model: type[M], doc: Document) -> M:
    """Validate doc.data as `model`; every problem becomes one Problem with its line."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        problems = [_problem(model, doc, err) for err in exc.errors()]
        raise SpecError(_dedupe(problems)) from None


def _problem(model: type[BaseModel], doc: Document, err: Any) -> Problem:
    path = _data_path(doc.data, tuple(err["loc"]))
    kind = err["type"]
    if kind == "missing":
        return doc.problem(path, "is required", _missing_hint(path))
    if kind == "extra_forbidden":
        return doc.problem(path, "unknown key", _key_hint(model, path))
    message = _MESSAGES.get(kind) or _clean(err["msg"])
    if kind.startswith(("greater_than", "less_than")):
        message = _clean(err["msg"])
    return doc.problem(path, message)


def _data_path(data: Any, loc: tuple[Any, ...]) -> FieldPath:
    """Drop the parts of pydantic's loc that are not in the data (union branch names)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and str(part) in node:
            path.append(str(part))
            node = node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(part, str) and part[:1].isupper():
            continue  # a union member's class name, e.g. "PublicRoute"
        elif part in ("[key]",):
            continue
        else:
            path.append(part if isinstance(part, int) else str(part))
            node = None
    return tuple(path)


def _clean(msg: str) -> str:
    msg = msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def _missing_hint(path: FieldPath) -> str:
    if path == ("app",):
        return "name the app, e.g. `app: finance-report`"
    if path == ("domain",):
        return "give the base domain, e.g. `domain: example.com`"
    if path == ("compose",):
        return "list the app's Compose file(s), e.g. `compose: compose.yaml`"
    return ""


def _key_hint(model: type[BaseModel], path: FieldPath) -> str:
    known = _known_keys(model, path[:-1])
    if not known:
        return ""
    close = difflib.get_close_matches(str(path[-1]), known, n=1)
    if close:
        return f"did you mean `{close[0]}`?"
    return "known keys: " + ", ".join(sorted(known))


def _known_keys(model: type[BaseModel], parent: FieldPath) -> list[str]:
    """The field names allowed at `parent`, found by walking the model's annotations."""
    current: Any = model
    for part in parent:
        fields = getattr(current, "model_fields", None)
        if fields is not None and isinstance(part, str) and part in fields:
            current = _inner_model(fields[part].annotation)
        elif fields is None:
            current = _inner_model(current)
        else:
            # A dict of models (services.<name>): the value type is the next model.
            continue
        if current is None:
            return []
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside `X | None` or `dict[str, X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[object, ...]] = set()
    out = []
    for p in problems:
        key = (p.field, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
