"""Every corpus Compose file loads, and agrees with `docker compose config` on the
fields envplane normalises (ports and environment)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from envplane.compose.load import build_model, read_compose_files
from envplane.compose.model import PortMapping, parse_port
from tests.support import compose_v2, corpus_files, need

FILES = corpus_files()
IDS = [f.parent.name for f in FILES]
# Fixed values so both sides interpolate the same way, whatever the process has.
LOOKUP = {"PATH": "/usr/bin"}


@pytest.mark.skipif(not FILES, reason="the compose corpus (../shared/corpus/compose) is not here")
@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_corpus_file_loads_and_merges(path: Path) -> None:
    model, _ = build_model(read_compose_files([path]), LOOKUP, ())
    assert model.services
    for name, svc in model.services.items():
        for index, port in enumerate(svc.get("ports") or []):
            assert parse_port(port, model, ("services", name, "ports", index))


@pytest.mark.skipif(not FILES, reason="the compose corpus (../shared/corpus/compose) is not here")
@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_corpus_file_matches_docker_compose_config(path: Path) -> None:
    need("docker compose v2", compose_v2(), "install the Docker CLI with the Compose plugin")
    expected = _docker_config(path)
    model, _ = build_model(read_compose_files([path]), LOOKUP, ["*"])
    for name, svc in expected["services"].items():
        ours = model.services[name]
        assert _ports(ours) == sorted((_docker_port(p) for p in svc.get("ports") or []), key=repr), name
        assert (ours.get("environment") or {}) == (svc.get("environment") or {}), name


def _docker_config(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["docker", "compose", "-f", str(path), "--profile", "*", "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path.parent,
        env={**LOOKUP, "HOME": str(Path.home())},
        check=True,
    )
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def _ports(svc: dict[str, Any]) -> list[PortMapping]:
    return sorted((m for port in svc.get("ports") or [] for m in parse_port(port)), key=repr)


def _docker_port(port: dict[str, Any]) -> PortMapping:
    published = port.get("published")
    return PortMapping(
        int(port["target"]),
        int(published) if published else None,
        str(port.get("host_ip") or ""),
        str(port.get("protocol") or "tcp"),
    )
