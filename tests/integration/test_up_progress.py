"""#10.5, #10.8: `envplane up` on a real engine says what it waits on while it waits (a live
line on a terminal, periodic lines when piped), fails fast when waiting cannot help, and
checks that each public port answers."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need

ENV = {"DATA_PATH": "", "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}
# httpd answers 404 for health.txt until the command writes it, `ready_after` seconds in.
LATE = """\
services:
  web:
    image: busybox:stable
    command: ["sh", "-c", "mkdir -p /tmp/www; (sleep {ready_after}; echo ok > /tmp/www/health.txt) & exec httpd -f -p 8080 -h /tmp/www"]
    ports: ["8080:8080"]
    init: true
"""


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[Path]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    busybox_app(tmp_path, f"pg{uuid.uuid4().hex[:6]}", free_port_block())
    yield tmp_path
    cli("down", "test", "--pr", "4", "--purge", cwd=tmp_path, env=ENV)


def edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new))


def test_a_health_path_that_answers_404_fails_within_20_s_naming_the_status_and_piped_lines_show_it(
        app: Path) -> None:
    edit(app, "envplane.yaml", "health: /health.txt", "health: /healthz")
    started = time.monotonic()
    done = cli("up", "test", "--pr", "4", cwd=app, env=ENV)
    took = time.monotonic() - started
    assert done.returncode == 1
    assert took < 60  # 20 s of 404s, not the 120 s timeout
    assert "error: web answers GET /healthz with HTTP 404 on every try for 20 s" in done.stderr
    assert "see why: envplane logs test web --pr 4" in done.stderr
    assert "ENV SERVICE" not in done.stderr
    # Piped: a plain line every 10 s while the step runs, saying what it waits on.
    waits = [line for line in done.stderr.splitlines() if line.startswith("  … wait until web answers")]
    assert waits and all(line.endswith("— web: GET /healthz → HTTP 404") for line in waits), done.stderr
    assert re.search(r"\(1\d s\)", waits[0]), waits
    assert "✗ wait until web answers /healthz" in done.stderr
    # #10.5: status does not call it simply running: unhealthy, why, and the failed deploy.
    [row] = json.loads(cli("status", "test", "--json", cwd=app, env=ENV).stdout)
    assert (row["state"], row["health"], row["why"], row["last_deploy"]) == (
        "running", "unhealthy", "GET /healthz → HTTP 404", "failed")
    shown = cli("status", "test", cwd=app, env={**ENV, "COLUMNS": "250"}).stdout
    assert "unhealthy" in shown and "failed" in shown and "HTTP 404" in shown, shown


def test_up_on_a_terminal_draws_a_live_line_with_elapsed_time_and_the_last_answer(app: Path) -> None:
    (app / "compose.yaml").write_text(LATE.format(ready_after=4))
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "envplane", "up", "test", "--pr", "4"], cwd=app,
                            stdin=slave, stdout=slave, stderr=slave, env={**os.environ, **ENV, "TERM": "xterm"})
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=60) == 0, seen.decode(errors="replace")
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    live = re.findall(r"wait until web answers /health\.txt \((\d+) s\) — web: GET /health\.txt → HTTP 404", text)
    assert live, text
    assert len(set(live)) >= 2  # redrawn as the seconds go by
    assert "✓ wait until web answers /health.txt" in text
    assert "is up" in text


def test_a_container_that_exits_fails_at_once_with_its_exit_code_and_last_lines_masked(app: Path) -> None:
    value = f"tok-{uuid.uuid4().hex}"
    edit(app, "envplane.yaml", "    health: /health.txt\n", "    health: /health.txt\n    secrets: [API_KEY]\n")
    (app / "compose.yaml").write_text(
        "services:\n  web:\n    image: busybox:stable\n    ports: ['8080:8080']\n"
        "    command: ['sh', '-c', 'sleep 1; echo \"using key $$API_KEY\"; echo \"fatal: no config\"; exit 3']\n")
    stored = subprocess.run([sys.executable, "-m", "envplane", "secrets", "set", "test", "API_KEY", "-s", "web",
                             "--pr", "4"], cwd=app, input=value, capture_output=True, text=True,
                            env={**os.environ, **ENV}, timeout=120)
    assert stored.returncode == 0, stored.stderr
    started = time.monotonic()
    done = cli("up", "test", "--pr", "4", cwd=app, env=ENV)
    assert done.returncode == 1
    assert time.monotonic() - started < 40
    assert "error: web exited with code 3 before it was healthy; its last lines:" in done.stderr
    assert "  using key ***" in done.stderr and "  fatal: no config" in done.stderr
    assert value not in done.stderr + done.stdout


@pytest.mark.parametrize("ports", ["[]", "['9090:9090']"])
def test_a_public_port_the_container_does_not_listen_on_fails_naming_the_port_it_listens_on(
        app: Path, ports: str) -> None:
    """The issue's `public: {port: 9090}` on a container listening on 8080, published or not."""
    edit(app, "envplane.yaml", "    public: 8080\n    health: /health.txt\n", "    public: 9090\n")
    edit(app, "compose.yaml", 'ports: ["8080:8080"]', f"ports: {ports}")
    done = cli("up", "test", "--pr", "4", cwd=app, env=ENV)
    assert done.returncode == 1, done.stdout
    assert "is up" not in done.stdout
    assert "error: web listens on port 8080, not on its public port 9090" in done.stderr
    assert "set services.web.public.port to 8080 in envplane.yaml" in done.stderr


def test_status_shows_health_tried_now_the_release_and_why_it_is_unhealthy(app: Path) -> None:
    edit(app, "compose.yaml", "    init: true\n", "    init: true\n    environment: {ENVPLANE_RELEASE: v1.2.3}\n")
    assert cli("up", "test", "--pr", "4", cwd=app, env=ENV).returncode == 0
    [row] = json.loads(cli("status", "test", "--json", cwd=app, env=ENV).stdout)
    assert (row["state"], row["health"], row["version"], row["why"]) == ("running", "healthy", "v1.2.3", None)
    (app / "www" / "health.txt").unlink()  # the app now answers 404 on its health path
    [row] = json.loads(cli("status", "test", "--json", cwd=app, env=ENV).stdout)
    assert (row["state"], row["health"], row["why"]) == ("running", "unhealthy", "GET /health.txt → HTTP 404")
    shown = cli("status", "test", cwd=app, env={**ENV, "COLUMNS": "200"}).stdout
    assert "unhealthy" in shown and "v1.2.3" in shown and "HTTP 404" in shown


def test_the_lock_hint_names_only_flags_the_command_has(app: Path) -> None:
    """#10.9: `pass --wait` sent users to `No such option: --wait`."""
    from envplane.state import locks
    from envplane.state.db import open_store

    store = open_store(app)
    try:
        with locks.acquire(store, app_name(app), "test", "pr-4", holder="someone-else"):
            for command in (["up", "test", "--pr", "4"], ["preview", "up", "--pr", "4"]):
                refused = cli(*command, "--no-wait", cwd=app, env=ENV)
                assert refused.returncode == 1, refused.stderr
                assert "is locked by someone-else" in refused.stderr
                hint = refused.stderr.split("hint:", 1)[1]
                flags = set(re.findall(r"--[a-z][a-z-]*", hint))
                assert flags == {"--no-wait"}, hint
                usage = cli(*command[:2 if command[0] == "preview" else 1], "--help", cwd=app,
                            env={**ENV, "COLUMNS": "200"}).stdout
                assert all(flag in usage for flag in flags), usage
    finally:
        store.close()


def app_name(folder: Path) -> str:
    found = re.search(r"^app: (\S+)", (folder / "envplane.yaml").read_text(), re.M)
    assert found
    return found.group(1)
