"""One error hierarchy. The CLI formats these in one place; nothing else prints tracebacks.

Exit codes (README: Exit codes), one rule for every command:
  0  done, or nothing to do: what was asked for holds already (NothingToDo says so)
  1  the operation failed against the world: a backend down or refusing, a lock, the state
     store, or a thing the command names not found where it looked (NotFound: a release,
     a backup, a running container, a secret)
  2  bad input or usage: the command line or the spec is wrong on its face (an unknown env
     or service, a malformed value); nothing was changed
  130 interrupted (Ctrl-C): `Interrupted` says which operation stopped where
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


class NeedsConfirmation(UsageError):
    """The operation would delete what a person must confirm first (a purge of staging); it
    ran again with the confirmation given (`yes=True`) goes on. Nothing was changed.

    A terminal asks `question` (and, declined, says `declined`); anything else, a script or an
    API request without the confirmation, gets the message and hint (exit 2).
    """

    def __init__(self, message: str, hint: str, question: str, declined: str) -> None:
        super().__init__(message, hint)
        self.question = question
        self.declined = declined


class IsolationError(SpecError):
    """Two environment instances would share a resource the isolation invariant keeps apart."""


class StateError(EnvplaneError):
    """The state store cannot be read or written, or its audit chain is broken."""


class LockError(EnvplaneError):
    """Another operation holds the lock of this environment instance."""


class GateError(EnvplaneError):
    """A gate or a policy of the spec refused the operation (it ran, and said no)."""


class BackendError(EnvplaneError):
    """A backend (Docker, PostgreSQL, S3, a secret store, ...) refused or failed."""


class SecretUnset(BackendError):
    """A secret the spec names has no value in the store: a person sets it (`envplane
    secrets set`, the hint). Nothing broke, so the server answers 409, not a backend's 502;
    it stays a BackendError for the CLI (exit 1) and for an `up` that restores on failure."""


class NotFound(EnvplaneError):
    """What the command names is not where it looked: a release, a backup, a running
    container, a secret. The command was right; the world has no such thing (exit 1)."""


class NothingToDo(EnvplaneError):
    """What was asked for holds already (`preview down` of a PR never deployed): the command
    says so, changes nothing — no audit row, no state row — and succeeds."""

    exit_code = 0


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped an operation part-way; the message says which and where.

    A KeyboardInterrupt, so whatever catches that to stop still does; the CLI prints the
    message and exits 130.
    """

    exit_code = 130

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class Forbidden(EnvplaneError):
    """Who asks is known, and may not do this: a token or user whose scopes do not allow it
    (the server answers 403)."""
