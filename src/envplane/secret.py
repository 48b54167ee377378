"""Secret: a string that prints as *** everywhere, so a value never leaks by formatting.

A value can still leak through what other programs print: a hook that echoes its
DATABASE_URL, Compose quoting an env file. Inside `masking()` (the CLI holds it for the
whole command) every Secret made is remembered, and `mask_known` hides those values, as
written and as other programs commonly escape them, in whatever text is about to reach a
person, a log or the state store.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values are not masked in other programs' output: masking them would garble every
# message ("exit 1"), and a value that short is not one that masking could keep secret.
MIN_MASKED = 4

_known: set[str] | None = None  # the values to mask while masking() is active
_known_lock = threading.Lock()


class Secret:
    """Holds a secret value. str(), repr(), f-strings and JSON all give the mask.

    The value is reachable only through `reveal()`, which makes every place that
    needs the real value easy to find.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if _known is not None and len(value) >= MIN_MASKED:
            with _known_lock:
                _known.add(value)

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


@contextmanager
def masking() -> Iterator[None]:
    """While this block runs, remember every Secret made, for mask_known. Re-entrant; the
    remembered values are dropped when the outermost block ends."""
    global _known
    if _known is not None:
        yield
        return
    _known = set()
    try:
        yield
    finally:
        _known = None


def mask_known(text: str, secrets: Iterable[Secret | str] = ()) -> str:
    """text with every remembered secret value (and the given ones) masked, in the forms
    other programs print them: as is, URL-encoded, JSON/Go-escaped, with `$` doubled as
    Compose writes it, and line by line for values of several lines."""
    with _known_lock:
        known = set(_known or ())
    given = {s.reveal() if isinstance(s, Secret) else s for s in secrets}
    return mask(text, given | {form for value in known | given for form in _forms(value)})


@lru_cache(maxsize=4096)
def _forms(value: str) -> frozenset[str]:
    escaped = json.dumps(value)[1:-1]
    forms = {value, quote(value, safe=""), quote_plus(value), escaped,
             json.dumps(value, ensure_ascii=False)[1:-1],
             value.replace("$", "$$"), escaped.replace("$", "$$")}
    forms.update(line for line in value.splitlines() if len(line.strip()) >= MIN_MASKED)
    return frozenset(form for form in forms if len(form) >= MIN_MASKED)


class MaskedFormatter(logging.Formatter):
    """A log line masked as the CLI masks its output (mask_known): every secret value the
    process met is the mask, in the message and in a traceback's text alike."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_known(super().format(record))
