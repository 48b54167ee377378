"""#11: an `up` that would change nothing runs no Compose command.

When the instance runs, healthy, the very containers the last `up` started, from the same
Compose file, env files and image ids, `up` skips Compose and says why; every pre-flight
check and the health check still run. A changed file, a changed image behind the same tag,
or a stopped container sends it through Compose again.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need


@pytest.fixture()
def staging(tmp_path: Path) -> Iterator[tuple[Path, str, int, dict[str, str], Path]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"nu{uuid.uuid4().hex[:6]}"
    block = free_port_block()
    folder = tmp_path / "app"
    busybox_app(folder, name, block)  # staging publishes web's 8080 on block + 150
    image = f"envplane-test-noop-{name}:1"
    subprocess.run(["docker", "tag", "busybox:stable", image], check=True, capture_output=True)
    compose = folder / "compose.yaml"
    worker = f"  worker:\n    image: {image}\n    command: [\"sleep\", \"86400\"]\n    init: true\nvolumes:\n"
    compose.write_text(compose.read_text().replace("image: busybox:stable", f"image: {image}")
                       .replace("\nvolumes:\n", "\n" + worker))
    # Every docker command `up` runs, one a line: the proof that Compose did not run.
    real = subprocess.run(["which", "docker"], capture_output=True, text=True, check=True).stdout.strip()
    shims, calls = tmp_path / "shims", tmp_path / "docker-calls"
    shims.mkdir()
    (shims / "docker").write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {real} "$@"\n')
    (shims / "docker").chmod(0o755)
    yield folder, name, block + 150, {"PATH": f"{shims}:{os.environ['PATH']}"}, calls
    cli("down", "staging", "--purge", "--yes", cwd=folder)
    subprocess.run(["docker", "rmi", image], capture_output=True)


def _served(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health.txt", timeout=10) as response:
        return response.read().decode()


def _web(name: str) -> str:
    return subprocess.run(["docker", "inspect", "--format", "{{.Id}}", f"{name}-web-staging"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _up(folder: Path, env: dict[str, str], calls: Path) -> tuple[dict[str, dict[str, str]], list[str]]:
    """`up staging`: its steps (kind -> state and reason) and the Compose commands it ran."""
    steps, ran = _up_running(folder, env, calls)
    return steps, [line for line in ran if line.startswith("compose ")]


def _up_running(folder: Path, env: dict[str, str], calls: Path) -> tuple[dict[str, dict[str, str]], list[str]]:
    """`up staging`: its steps and every docker command it ran."""
    calls.unlink(missing_ok=True)
    done = cli("up", "staging", "--timeout", "60", "--json", cwd=folder, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return {s["kind"]: s for s in json.loads(done.stdout)["steps"]}, calls.read_text().splitlines()


@pytest.mark.integration
def test_an_up_that_changes_nothing_runs_no_compose_and_any_change_redeploys(
        staging: tuple[Path, str, int, dict[str, str], Path]) -> None:
    folder, name, port, env, calls = staging
    steps, compose = _up(folder, env, calls)
    assert steps["start"]["state"] == "ok" and any(" up " in f" {c} " for c in compose)
    first = _web(name)

    steps, ran = _up_running(folder, env, calls)  # nothing changed: no Compose command at all
    assert (steps["start"]["state"], steps["start"].get("reason")) == (
        "skip", "the same Compose file, env files and images run already")
    assert [line for line in ran if line.startswith("compose ")] == []
    assert len([line for line in ran if line.startswith("image inspect")]) == 1  # one image, two services
    assert steps["images"]["state"] == "ok" and steps["health"]["state"] == "ok"  # still checked
    assert _web(name) == first and _served(port) == "ok\n"

    spec = folder / "compose.yaml"
    spec.write_text(spec.read_text().replace("init: true", "init: true\n    environment: {CHANGED: '1'}", 1))
    steps, compose = _up(folder, env, calls)  # a changed file goes through Compose
    assert steps["start"]["state"] == "ok" and any(" up " in f" {c} " for c in compose)
    second = _web(name)
    assert second != first and _served(port) == "ok\n"

    image = f"envplane-test-noop-{name}:1"  # the same tag, another image behind it
    subprocess.run(["docker", "build", "-q", "-t", image, "-"], input="FROM busybox:stable\n"
                   f"LABEL envplane.test={name}\n", text=True, check=True, capture_output=True)
    steps, compose = _up(folder, env, calls)
    assert steps["start"]["state"] == "ok" and any(" up " in f" {c} " for c in compose)
    third = _web(name)
    assert third != second and _served(port) == "ok\n"

    steps, _ = _up(folder, env, calls)
    assert steps["start"]["state"] == "skip" and _web(name) == third

    subprocess.run(["docker", "stop", "--time", "1", f"{name}-web-staging"], capture_output=True, check=True)
    steps, compose = _up(folder, env, calls)  # a stopped container is started again
    assert steps["start"]["state"] == "ok" and any(" up " in f" {c} " for c in compose)
    assert _served(port) == "ok\n"
