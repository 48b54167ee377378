"""Compose's durations, byte sizes and CPU counts as Kubernetes takes them. Pure.

Each parser returns None for a value it cannot read; the caller names the field.
"""

from __future__ import annotations

import math
import re
from typing import Any

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
# Docker's RAMInBytes: a number, an optional unit (binary multiples), an optional i and b.
_BYTES = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def seconds(value: Any) -> float | None:
    """`1m30s`, `10s`, `500ms` (Go's durations, as Compose writes them) -> seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if not text:
        return None
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


def whole_seconds(value: float, least: int = 1) -> int:
    """Kubernetes counts probe periods and grace periods in whole seconds: round up."""
    return max(least, math.ceil(value - 1e-9))


def size_bytes(value: Any) -> int | None:
    """`1.5G`, `512m`, `1gb`, `2048` (Compose's byte sizes, binary units) -> bytes."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    match = _BYTES.match(str(value).strip())
    if match is None:
        return None
    return int(float(match.group(1)) * 1024 ** _POWERS[(match.group(2) or "").lower()])


def memory(value: Any) -> str | None:
    """A Compose byte size as a Kubernetes quantity: 1.5G -> 1536Mi."""
    found = size_bytes(value)
    if found is None or found <= 0:
        return None
    for unit, power in (("Gi", 3), ("Mi", 2), ("Ki", 1)):
        if found % 1024**power == 0:
            return f"{found // 1024**power}{unit}"
    return str(found)


def cpus(value: Any) -> str | None:
    """Compose's `cpus: 0.5` (a count of CPUs) as a Kubernetes quantity: 500m."""
    try:
        count = float(value)
    except (TypeError, ValueError):
        return None
    if isinstance(value, bool) or count <= 0 or not math.isfinite(count):
        return None
    milli = max(1, round(count * 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"
