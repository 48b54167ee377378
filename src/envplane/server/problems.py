"""Errors as problem+json (RFC 9457), with the CLI's messages and hints.

One rule maps envplane's error hierarchy (envplane.errors) to HTTP statuses, as the CLI maps
it to exit codes: bad input 400, a spec the server holds that is wrong 422, a thing named
that is not there 404, an instance another operation holds, a gate that said no or a secret
nobody set 409, a backend that failed 502, a state store that cannot be reached 503. Every
message and hint is masked (secret.mask_known) whatever raised it.
"""

from __future__ import annotations

from dataclasses import replace
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field

from envplane.errors import (
    BackendError,
    EnvplaneError,
    Forbidden,
    GateError,
    LockError,
    NotFound,
    SecretUnset,
    SpecError,
    StateError,
    UsageError,
)
from envplane.secret import mask_known

MEDIA_TYPE = "application/problem+json"


class Busy(EnvplaneError):
    """The server has no room for this now (429): too many jobs run already."""


# Most specific first: SpecError before UsageError's siblings, IsolationError is a SpecError.
STATUSES: tuple[tuple[type[EnvplaneError], int], ...] = (
    (SpecError, 422),
    (UsageError, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (LockError, 409),
    (GateError, 409),
    (SecretUnset, 409),  # a person sets it; no backend failed
    (BackendError, 502),
    (StateError, 503),
    (Busy, 429),
)
FAILED = 409  # any other EnvplaneError: the operation failed against the world (CLI exit 1)


class ProblemDetail(BaseModel):
    """One thing wrong with one place of one file (errors.Problem)."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str = ""
    hint: str = ""


class ProblemBody(BaseModel):
    """An error: `detail` is the CLI's message and `hint` its hint."""

    type: str = Field(description="urn:envplane:problem:{kind}, e.g. urn:envplane:problem:usage-error")
    title: str
    status: int
    detail: str
    hint: str = ""
    problems: list[ProblemDetail] = []


def status_of(error: EnvplaneError) -> int:
    return next((status for kind, status in STATUSES if isinstance(error, kind)), FAILED)


def kind_of(error: BaseException) -> str:
    """UsageError -> usage-error: the problem's type names the error class."""
    name = type(error).__name__
    return "".join("-" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


def body(status: int, detail: str, hint: str = "", kind: str = "",
         problems: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A problem document; `kind` defaults to the status's name (not-found, unauthorized)."""
    phrase = HTTPStatus(status).phrase
    return {"type": f"urn:envplane:problem:{kind or phrase.lower().replace(' ', '-')}", "title": phrase,
            "status": status, "detail": mask_known(detail), "hint": mask_known(hint),
            "problems": problems or []}


def of_error(error: EnvplaneError) -> dict[str, Any]:
    """The problem document of an envplane error, masked."""
    found = [replace(p, message=mask_known(p.message), hint=mask_known(p.hint)) for p in error.problems]
    return body(status_of(error), error.message, error.hint, kind_of(error),
                [p.as_dict() for p in found])


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route's error statuses (`documented` gives them their body)."""
    return {status: {"model": ProblemBody, "description": HTTPStatus(status).phrase} for status in statuses}


def documented(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with every error response as the server sends it: problem+json
    with a ProblemBody, and 422 (a request the schema refuses) on every operation that takes
    parameters or a body."""
    ref = {"schema": {"$ref": "#/components/schemas/ProblemBody"}}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            answers = operation.setdefault("responses", {})
            if operation.get("parameters") or operation.get("requestBody"):
                answers["422"] = {"description": HTTPStatus(422).phrase}
            for status, answer in answers.items():
                if status.isdigit() and int(status) >= 400:
                    answer["content"] = {MEDIA_TYPE: ref}
    schemas = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema
