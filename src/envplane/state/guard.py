"""Refuse secrets and anything that would not survive a JSON round trip unchanged.

Detail fields are stored and hashed as JSON. A `Secret` there would either leak its
value or be stored as "***" and lie; either way it has no place in the state store. Text
that carries a secret value unawares (an error with a command's output) is stored with
every known secret value masked (secret.mask_known).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from envplane.secret import Secret, mask_known

JsonDict = dict[str, Any]


def plain_detail(detail: Mapping[str, Any] | None) -> JsonDict:
    """Check `detail` and return a plain dict copy of it (empty for None), secrets masked."""
    if detail is None:
        return {}
    if not isinstance(detail, Mapping):
        raise TypeError(f"detail must be a dict, not {type(detail).__name__}")
    return {key: _plain(value, key) for key, value in _items(detail, "detail")}


def refuse_secrets(**fields: object) -> None:
    """Raise TypeError when any named field is a Secret."""
    for name, value in fields.items():
        if isinstance(value, Secret):
            raise TypeError(f"{name}: a Secret must never be stored in the state store")


def _items(mapping: Mapping[Any, Any], path: str) -> list[tuple[str, Any]]:
    for key in mapping:
        if not isinstance(key, str):
            raise TypeError(f"{path}: keys must be strings, got {key!r}")
    return [(key, mapping[key]) for key in mapping]


def _plain(value: Any, path: str) -> Any:
    if isinstance(value, Secret):
        raise TypeError(f"{path}: a Secret must never be stored in the state store")
    if isinstance(value, str):
        return mask_known(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path}: {value} cannot be stored as JSON")
        return value
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{path}.{k}") for k, v in _items(value, path)}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{path}: {type(value).__name__} is not plain JSON data")
