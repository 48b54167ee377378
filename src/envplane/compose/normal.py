"""Normal forms of service fields Compose lets users write two ways. Pure.

Lists of `KEY=value` become mappings, `depends_on` and `networks` lists become
mappings, and a volume's short syntax yields its target, as compose-go does before
merging, so that files written in different forms merge the same way.
"""

from __future__ import annotations

from typing import Any

# Written as `KEY=value` lists or mappings; held as mappings of str (None when unset).
KEY_VALUE = ("environment", "labels", "annotations", "sysctls")


def normal_service(svc: dict[str, Any]) -> dict[str, Any]:
    out = dict(svc)
    for key in KEY_VALUE:
        if key in out and out[key] is not None:
            out[key] = key_values(out[key])
    if isinstance(out.get("depends_on"), list):
        out["depends_on"] = {
            str(name): {"condition": "service_started", "required": True} for name in out["depends_on"]
        }
    if isinstance(out.get("networks"), list):
        out["networks"] = {str(name): None for name in out["networks"]}
    build = out.get("build")
    if isinstance(build, dict) and isinstance(build.get("args"), list):
        out["build"] = {**build, "args": key_values(build["args"])}
    return out


def key_values(value: Any) -> dict[str, str | None]:
    """`["A=1", "B"]` or `{"A": 1, "B": None}` -> {"A": "1", "B": None}."""
    if isinstance(value, dict):
        return {str(k): _text(v) for k, v in value.items()}
    out: dict[str, str | None] = {}
    for item in value if isinstance(value, list) else [value]:
        key, sep, val = str(item).partition("=")
        out[key] = val if sep else None
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def volume_target(item: Any) -> Any:
    """The container path a volume entry mounts at: what Compose merges volumes by."""
    if isinstance(item, dict):
        return item.get("target")
    parts = str(item).split(":")
    return parts[1] if len(parts) > 1 else parts[0]
