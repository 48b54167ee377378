"""The table of compose_verdicts.yaml: each case as a Compose file, for envplane and for Compose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

TABLE = Path(__file__).with_name("compose_verdicts.yaml")
JUDGES = ("config", "create", "up")


def cases() -> list[dict[str, Any]]:
    loaded = YAML(typ="safe").load(TABLE.read_text(encoding="utf-8"))
    return [dict(case) for case in loaded]


def case_id(case: dict[str, Any]) -> str:
    return repr(case["service"])[:90]


def compose_text(case: dict[str, Any]) -> str:
    """Service `w` with the case's keys, and a service `db` to depend on; as JSON, which is
    YAML that both parsers read alike (Compose refuses a plain `::1` in a flow list)."""
    service = {"image": "busybox:stable", "command": ["true"], **case["service"]}
    data = {"services": {"w": service, "db": {"image": "busybox:stable", "command": ["true"]}}}
    return json.dumps(data, indent=1) + "\n"
