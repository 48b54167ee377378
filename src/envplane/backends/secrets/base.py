"""The interface every secret store implements, and the one function that normalises paths.

A path names one group of keys: `secret/data/{app}/{env}/{service}` (DESIGN.md), e.g.
`secret/data/finance-report/test-pr-5/backend`. Stores accept it with or without the
`secret/data/` prefix and always return it with the prefix, as Target spells it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Protocol

from envplane.errors import UsageError
from envplane.secret import Secret

MOUNT_PREFIX = "secret/data/"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SecretStore(Protocol):
    def read(self, path: str) -> dict[str, Secret]:
        """The keys stored at path; an empty dict when nothing is there."""

    def write(self, path: str, values: Mapping[str, Secret]) -> None:
        """Merge values into what path holds: keys not named are kept."""

    def remove(self, path: str, keys: Iterable[str]) -> list[str]:
        """Remove keys from path in one read-modify-write: under the store's lock, or with
        check-and-set where the store has no lock (Vault), so a failure changes nothing and
        a concurrent write is never lost. Other keys stay. Returns the removed keys, sorted."""

    def delete(self, path: str) -> None:
        """Remove path; nothing happens when it is absent."""

    def list(self, prefix: str) -> list[str]:
        """Every path equal to prefix or under it, sorted, with the mount prefix."""

    def delete_tree(self, prefix: str) -> int:
        """Delete every path list(prefix) gives; return how many there were."""


def relative(path: str) -> str:
    """`secret/data/a/b/c`, `a/b/c` and `/a/b/c/` all give `a/b/c`; anything odd is refused.

    Segments are checked so that a prefix never escapes its subtree (`..`) and so that
    `test-pr-5` can be matched by whole segments, never as the start of `test-pr-50`.
    """
    text = path.strip().strip("/") + "/"
    if text.startswith(MOUNT_PREFIX):
        text = text[len(MOUNT_PREFIX):]
    text = text.rstrip("/")
    parts = text.split("/")
    if not text or not all(_SEGMENT.match(part) for part in parts):
        raise UsageError(
            f"{path!r} is not a secret path",
            "use secret/data/{app}/{env}/{service}: letters, digits, '.', '_' and '-' between '/'",
        )
    return "/".join(parts)


def full(path: str) -> str:
    """The canonical spelling: `secret/data/` and the relative path."""
    return MOUNT_PREFIX + relative(path)


def under(path: str, prefix: str) -> bool:
    """True when relative path is prefix itself or lies below it, by whole segments."""
    return path == prefix or path.startswith(prefix + "/")


def check_keys(path: str, values: Mapping[str, Secret]) -> None:
    """Every value must be a Secret, so that no plain string travels as a secret."""
    for key, value in values.items():
        if not key or not isinstance(value, Secret):
            raise UsageError(f"{full(path)}: key {key!r} needs a non-empty name and a Secret value")
