"""One error hierarchy. The CLI formats these in one place; nothing else prints tracebacks.

Exit codes: 2 for input the user can fix (spec, Compose file, arguments), 1 for an
operation that failed against the world (a backend, a lock, the state store).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one place of one file."""

    message: str
    file: Path | None = None
    line: int | None = None  # 1-based
    field: str = ""  # dotted path, e.g. "environments.staging.ports[0]"
    hint: str = ""

    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line else str(self.file)

    def render(self) -> str:
        head = f"{self.field}: {self.message}" if self.field else self.message
        where = self.where()
        return f"{head} ({where})" if where else head

    def as_dict(self) -> dict[str, object]:
        return {
            "message": self.message,
            "file": str(self.file) if self.file else None,
            "line": self.line,
            "field": self.field,
            "hint": self.hint,
        }


class EnvplaneError(Exception):
    """An error a user can act on: a message and, where one helps, a hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def problems(self) -> Sequence[Problem]:
        return [Problem(self.message, hint=self.hint)]


class SpecError(EnvplaneError):
    """The spec or a Compose file is wrong. Carries one Problem per mistake."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("SpecError needs at least one problem")
        self._problems = list(problems)
        first = self._problems[0]
        super().__init__(first.render(), first.hint)

    @property
    def problems(self) -> Sequence[Problem]:
        return self._problems

    def __str__(self) -> str:
        return "\n".join(p.render() for p in self._problems)


class UsageError(EnvplaneError):
    """A command-line argument is wrong (unknown env, bad PR number, ...)."""

    exit_code = 2


class IsolationError(SpecError):
    """Two environment instances would share a resource the isolation invariant keeps apart."""


class StateError(EnvplaneError):
    """The state store cannot be read or written, or its audit chain is broken."""


class LockError(EnvplaneError):
    """Another operation holds the lock of this environment instance."""


class BackendError(EnvplaneError):
    """A backend (Docker, PostgreSQL, S3, a secret store, ...) refused or failed."""
