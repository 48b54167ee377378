"""#10.11: Ctrl-C during `up` stops cleanly: exit 130 with a line saying what was
interrupted, an audit row and a deployment marked interrupted, and no container left
half-replaced by Compose (`57017a931882_myapp-web-pr-4`); `verify` flags such a
container and the next `up` puts it right.

Ctrl-C is sent as a terminal sends it: SIGINT to the whole foreground process group.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need

ENV = {"DATA_PATH": "", "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}
LEFTOVER = re.compile(r"^[0-9a-f]{12}_")
# httpd starts only after a long sleep: the health step waits on it until interrupted.
NEVER_READY = """\
services:
  web:
    image: busybox:stable
    command: ["sh", "-c", "sleep 600; exec httpd -f -p 8080 -h /www"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro"]
    init: true
"""
# A container that takes 8 s to stop (its shell ignores SIGTERM): Compose's recreate creates
# the new container under a temporary name, then stops the old one, then renames.
SLOW_STOP = """\
services:
  web:
    image: busybox:stable
    command: ["sh", "-c", "trap '' TERM; httpd -f -p 8080 -h /www & while :; do sleep 1; done"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro"]
    stop_grace_period: 8s
    environment: {{GENERATION: "{generation}"}}
    init: true
"""


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[Path]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    busybox_app(tmp_path, f"ir{uuid.uuid4().hex[:6]}", free_port_block())
    yield tmp_path
    cli("down", "test", "--pr", "4", "--purge", cwd=tmp_path, env=ENV)
    for name in containers(tmp_path):  # anything a failed test left, by its own labels
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def app_name(folder: Path) -> str:
    return re.search(r"^app: (\S+)", (folder / "envplane.yaml").read_text(), re.M).group(1)  # type: ignore[union-attr]


def containers(folder: Path) -> list[str]:
    """Names of every container (any state) of the app, by envplane's label."""
    listed = subprocess.run(["docker", "ps", "--all", "--filter", f"label=envplane.app={app_name(folder)}",
                             "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
    return listed.stdout.split()


def start_up(folder: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """`envplane up test --pr 4` in its own process group (as a shell runs a foreground job),
    its stderr lines collected as they come (all of them once `ended` returned)."""
    proc = subprocess.Popen([sys.executable, "-m", "envplane", "up", "test", "--pr", "4"], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV}, start_new_session=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    READERS[proc.pid] = reader
    return proc, lines


READERS: dict[int, threading.Thread] = {}


def ended(proc: subprocess.Popen[str], timeout: float) -> int:
    """The exit code, once the process ended and its stderr was read to the end."""
    code = proc.wait(timeout=timeout)
    READERS.pop(proc.pid).join(timeout=30)
    return code


def until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def ctrl_c(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole foreground group


def test_ctrl_c_while_waiting_for_health_exits_130_saying_what_was_interrupted_and_records_it(
        app: Path) -> None:
    (app / "compose.yaml").write_text(NEVER_READY)
    proc, lines = start_up(app)
    until(lambda: any(line.startswith("✓ start Compose project") for line in lines), 120, "the start step")
    time.sleep(1.5)  # into the health wait
    ctrl_c(proc)
    assert ended(proc, 60) == 130
    text = "\n".join(lines)
    assert "✗ wait until web answers /health.txt" in text and "interrupted" in text, text
    name = app_name(app)
    assert (f"interrupted: up of {name} pr-4 during \"wait until web answers /health.txt\"" in text), text
    # The audit log and the deployment say so.
    rows = json.loads(cli("audit", "log", "--json", cwd=app, env=ENV).stdout)
    [row] = [r for r in rows if r["action"] == "up" and r["instance"] == "pr-4"]
    assert row["outcome"] == "interrupted"
    assert row["detail"]["step"] == "wait until web answers /health.txt"
    from envplane.state import instances
    from envplane.state.db import open_store

    store = open_store(app)
    try:
        [deployment] = instances.deployments(store, name, "test", "pr-4")
        assert deployment.status == "interrupted"
        assert [s.status for s in instances.steps(store, deployment.id)][-1] == "interrupted"
        assert instances.get_instance(store, name, "test", "pr-4").status == "interrupted"  # type: ignore[union-attr]
    finally:
        store.close()
    # The lock went with the process: the next `up` is not blocked.
    (app / "compose.yaml").write_text(SLOW_STOP.format(generation=1))
    again = cli("up", "test", "--pr", "4", "--no-wait", cwd=app, env=ENV)
    assert again.returncode == 0, again.stderr


def test_ctrl_c_while_compose_replaces_a_container_leaves_no_renamed_container(app: Path) -> None:
    (app / "compose.yaml").write_text(SLOW_STOP.format(generation=1))
    first = cli("up", "test", "--pr", "4", cwd=app, env=ENV)
    assert first.returncode == 0, first.stderr
    (app / "compose.yaml").write_text(SLOW_STOP.format(generation=2))  # web is recreated
    proc, lines = start_up(app)
    # Compose made the new container under its temporary name and now stops the old one.
    until(lambda: any(LEFTOVER.match(n) for n in containers(app)), 120, "Compose's temporary container")
    ctrl_c(proc)
    assert ended(proc, 90) == 130, "\n".join(lines)
    left = containers(app)
    assert not [n for n in left if LEFTOVER.match(n)], left
    assert left == [f"{app_name(app)}-web-pr-4"]
    assert "interrupted: up of" in "\n".join(lines)


def test_verify_flags_a_half_replaced_container_and_the_next_up_puts_it_right(app: Path) -> None:
    assert cli("up", "test", "--pr", "4", cwd=app, env=ENV).returncode == 0
    name = f"{app_name(app)}-web-pr-4"
    # What an interrupted Compose recreate leaves: the container under its temporary name.
    container_id = subprocess.run(["docker", "inspect", "--format", "{{.Id}}", name], capture_output=True,
                                  text=True, check=True).stdout.strip()
    leftover = f"{container_id[:12]}_{name}"
    subprocess.run(["docker", "rename", name, leftover], check=True)
    # verify looks at the whole engine (other apps too): only this app's findings count here.
    checked = json.loads(cli("verify", "--json", cwd=app, env=ENV).stdout)
    assert "violations" in checked, checked
    assert {"kind": "half-replaced", "subject": f"container {leftover}",
            "detail": f"{app_name(app)}/test/pr-4: left by an interrupted Compose recreate; "
                      "the next `envplane up test --pr 4` puts it right"} in checked["violations"], checked
    again = cli("up", "test", "--pr", "4", cwd=app, env=ENV)
    assert again.returncode == 0, again.stderr
    assert containers(app) == [name]
    checked = json.loads(cli("verify", "--json", cwd=app, env=ENV).stdout)
    assert "violations" in checked, checked
    assert not [f for f in checked["violations"] if app_name(app) in f["subject"] + f["detail"]], checked
