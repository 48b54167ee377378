"""What one ensure or purge did to one thing: a change, or a no-op that says why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["create", "update", "noop", "delete"]


@dataclass(frozen=True)
class Change:
    action: Action
    what: str  # "role finance_report_staging", "bucket finance-report-pr-5"
    reason: str  # never holds a secret value: callers pass names and counts only

    def __str__(self) -> str:
        return f"{self.action} {self.what}: {self.reason}"


def create(what: str, reason: str = "missing") -> Change:
    return Change("create", what, reason)


def update(what: str, reason: str) -> Change:
    return Change("update", what, reason)


def noop(what: str, reason: str) -> Change:
    return Change("noop", what, reason)


def delete(what: str, reason: str) -> Change:
    return Change("delete", what, reason)
