"""#9.19 on a real engine: `verify` tells sharing the spec declares from sharing it does not.

Two PR instances of a busybox app mount one host folder, which the spec lists under
`shared.binds`: verify reports it as declared sharing and passes. A container started by
hand with the app's labels and the same folder, but no declaration, is a violation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import busybox_app, docker_engine, ensure_busybox_image, free_port_block, need

pytestmark = pytest.mark.integration


def envplane(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "envplane", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "DATA_PATH": ""})


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, str, Path]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"vs{os.getpid() % 100000}"
    folder = busybox_app(tmp_path / "app", name, free_port_block())
    media = tmp_path / "media"
    media.mkdir()
    compose = folder / "compose.yaml"
    compose.write_text(compose.read_text().replace('"./www:/www:ro",', f'"./www:/www:ro", "{media}:/media:ro",'))
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text() + f"shared:\n  binds: [{media}]\n")
    yield folder, name, media
    subprocess.run(["docker", "rm", "-f", f"{name}-by-hand"], capture_output=True)
    for pr in ("1", "2"):
        envplane("down", "test", "--pr", pr, "--purge", cwd=folder)


def mine(findings: list[dict[str, str]], name: str) -> list[tuple[str, str, str]]:
    return [(f["kind"], f["subject"], f["detail"]) for f in findings if f"{name}/" in f["detail"]]


def test_declared_sharing_is_listed_and_undeclared_sharing_is_a_violation(app: tuple[Path, str, Path]) -> None:
    folder, name, media = app
    for pr in ("1", "2"):
        done = envplane("up", "test", "--pr", pr, cwd=folder)
        assert done.returncode == 0, done.stderr
    report = json.loads(envplane("verify", "--json", cwd=folder).stdout)
    both = f"used by {name}/test/pr-1 and {name}/test/pr-2"
    assert mine(report["violations"], name) == []
    assert ("declared host path", str(media), both) in mine(report["shared"], name)
    assert ("app files", str(folder / "www"), both) in mine(report["shared"], name)

    subprocess.run(["docker", "run", "-d", "--name", f"{name}-by-hand", "--label", f"envplane.app={name}",
                    "--label", "envplane.env=test", "--label", "envplane.instance=pr-9",
                    "-v", f"{media}:/media:ro", "busybox:stable", "sleep", "300"],
                   check=True, capture_output=True)
    done = envplane("verify", "--json", cwd=folder)
    assert done.returncode == 1
    violations = mine(json.loads(done.stdout)["violations"], name)
    assert ("shared host path", str(media), f"used by {name}/test/pr-1 and {name}/test/pr-9") in violations


@pytest.mark.parametrize("kind", ["network", "volume"])
def test_what_another_instance_removes_while_verify_looks_is_not_an_error(kind: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """verify reads the whole engine while other instances come and go (a CI run of the
    suite failed so: `docker network inspect` of a network another test's down had just
    removed). What is gone between listing and inspecting is simply not there."""
    import uuid

    from envplane import verify

    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    name = f"vanishing-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", kind, "create", "--label", f"envplane.app={name}", name], check=True,
                   capture_output=True)
    listed = verify.run

    def another_down_in_between(args: list[str], **kwargs: object) -> object:
        done = listed(args, **kwargs)  # type: ignore[arg-type]
        if list(args[1:3]) == [kind, "ls"]:
            subprocess.run(["docker", kind, "rm", name], check=True, capture_output=True)
        return done

    monkeypatch.setattr(verify, "run", another_down_in_between)
    try:
        seen = [r.name for r in verify.observe()]
    finally:
        subprocess.run(["docker", kind, "rm", name], capture_output=True)
    assert name not in seen
