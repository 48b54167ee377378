"""Semantic versions: parse, order, and the next patch for staging (v1.0.44 -> v1.0.45)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from envplane.errors import UsageError

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    def next_patch(self) -> Version:
        return Version(self.major, self.minor, self.patch + 1)


def parse(text: str) -> Version | None:
    match = _VERSION.match(text.strip())
    return Version(*(int(g) for g in match.groups())) if match else None


def require(text: str) -> Version:
    """A version the user typed (`promote v1.2.3`): a clear error when it is not one."""
    version = parse(text)
    if version is None:
        raise UsageError(f"{text!r} is not a version", "write it as v1.2.3")
    return version


def next_release(known: Iterable[str], first: Version = Version(1, 0, 0)) -> Version:
    """The next patch after the highest version among git tags and recorded releases.

    Anything that is not a version (`sha-3f2a…`, `latest`) is ignored; with none, `first`.
    """
    versions = [v for v in (parse(k) for k in known) if v is not None]
    return max(versions).next_patch() if versions else first
