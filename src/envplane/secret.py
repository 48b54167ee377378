"""Secret: a string that prints as *** everywhere, so a value never leaks by formatting."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


class Secret:
    """Holds a secret value. str(), repr(), f-strings and JSON all give the mask.

    The value is reachable only through `reveal()`, which makes every place that
    needs the real value easy to find.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


def mask(text: str, secrets: Iterable[Secret | str]) -> str:
    """Replace every occurrence of each secret value in text with the mask."""
    values = sorted(
        {s.reveal() if isinstance(s, Secret) else s for s in secrets} - {""},
        key=len,
        reverse=True,
    )
    for value in values:
        text = text.replace(value, MASK)
    return text
