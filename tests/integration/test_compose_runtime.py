"""up/down on a real Docker engine: two instances side by side, one destroyed, one intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import busybox_app, docker_engine, ensure_busybox_image, free_port_block, need

ENVPLANE = [sys.executable, "-m", "envplane"]

@pytest.fixture()
def app(tmp_path: Path) -> Iterator[Path]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    busybox_app(tmp_path, f"it{os.getpid() % 100000}", free_port_block())
    yield tmp_path
    for pr in ("1", "2", "3"):
        envplane("down", "test", "--pr", pr, "--purge", cwd=tmp_path, env={"DATA_PATH": ""})


def envplane(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENVPLANE, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def labelled(app_name: str, kind: str, instance: str | None = None) -> list[str]:
    filters = ["--filter", f"label=envplane.app={app_name}"]
    if instance:
        filters += ["--filter", f"label=envplane.instance={instance}"]
    args = {"container": ["docker", "ps", "-a", *filters, "--format", "{{.Names}}"],
            "network": ["docker", "network", "ls", *filters, "--format", "{{.Name}}"],
            "volume": ["docker", "volume", "ls", *filters, "--format", "{{.Name}}"]}[kind]
    return sorted(subprocess.run(args, capture_output=True, text=True, check=True).stdout.split())


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def app_name(folder: Path) -> str:
    return (folder / "envplane.yaml").read_text().split("\n")[0].split(": ")[1]


def base(folder: Path) -> int:
    return int((folder / "envplane.yaml").read_text().split("port_base: ")[1].split()[0])


def test_two_instances_and_down_touches_only_one(app: Path, tmp_path: Path) -> None:
    name = app_name(app)
    data = {"DATA_PATH": ""}
    for pr in ("1", "2"):
        done = envplane("up", "test", "--pr", pr, "--json", cwd=app, env=data)
        assert done.returncode == 0, done.stderr
    assert get(f"http://127.0.0.1:{base(app)}/health.txt") == "ok\n"
    assert get(f"http://127.0.0.1:{base(app) + 10}/health.txt") == "ok\n"
    assert labelled(name, "container") == [f"{name}-web-pr-1", f"{name}-web-pr-2"]

    done = envplane("down", "test", "--pr", "1", "--purge", "--json", cwd=app, env=data)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["left"] == {"containers": [], "networks": [], "volumes": []}
    assert labelled(name, "container", "pr-1") == []
    assert labelled(name, "network", "pr-1") == []
    assert labelled(name, "volume", "pr-1") == []
    # PR 2 is untouched: its container, network and volume are there and it still answers.
    assert labelled(name, "container", "pr-2") == [f"{name}-web-pr-2"]
    assert labelled(name, "network", "pr-2") == [f"{name}-pr-2_default"]
    assert labelled(name, "volume", "pr-2") == [f"{name}-pr-2_webdata"]
    assert get(f"http://127.0.0.1:{base(app) + 10}/health.txt") == "ok\n"


def test_up_killed_after_each_step_converges_on_the_next_up(app: Path) -> None:
    """SIGKILL `up` right after step 1, then after step 2, ...; the next up still converges."""
    name = app_name(app)
    data = {"DATA_PATH": ""}
    steps = json.loads(envplane("plan", "test", "--pr", "3", "--json", cwd=app).stdout)["steps"]
    for kill_after in range(1, len(steps)):
        proc = subprocess.Popen([*ENVPLANE, "up", "test", "--pr", "3"], cwd=app, text=True,
                                env={**os.environ, **data}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        assert proc.stderr is not None
        done = 0
        while done < kill_after:
            line = proc.stderr.readline()
            if not line:
                break
            done += line.startswith(("✓", "–"))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = envplane("up", "test", "--pr", "3", cwd=app, env=data)
    assert final.returncode == 0, final.stderr
    assert labelled(name, "container", "pr-3") == [f"{name}-web-pr-3"]
    assert labelled(name, "network", "pr-3") == [f"{name}-pr-3_default"]
    assert labelled(name, "volume", "pr-3") == [f"{name}-pr-3_webdata"]
    assert get(f"http://127.0.0.1:{base(app) + 20}/health.txt") == "ok\n"
    # The killed runs left their deployments open; the store still has one row for the instance.
    from envplane.state import instances
    from envplane.state.db import open_store

    store = open_store(app)
    assert [r.instance for r in instances.list_instances(store, name)] == ["pr-3"]
    assert instances.deployments(store, name, "test", "pr-3")[0].status == "ok"


def test_no_engine_is_a_clear_error(app: Path) -> None:
    done = envplane("up", "test", "--pr", "1", cwd=app,
                    env={"DOCKER_HOST": "unix:///nonexistent.sock", "DATA_PATH": ""})
    assert done.returncode == 1
    assert "no Docker engine answers" in done.stderr
    assert "Traceback" not in done.stderr


def test_verify_passes_then_names_a_network_shared_by_hand(app: Path) -> None:
    name = app_name(app)
    data = {"DATA_PATH": ""}
    for pr in ("1", "2"):
        assert envplane("up", "test", "--pr", pr, cwd=app, env=data).returncode == 0
    done = envplane("verify", "--json", cwd=app)
    report = json.loads(done.stdout)
    mine = [v for v in report["violations"] if name in v["detail"]]
    assert mine == [], report
    # Break isolation by hand: plug PR 1's container into PR 2's network.
    subprocess.run(["docker", "network", "connect", f"{name}-pr-2_default", f"{name}-web-pr-1"], check=True)
    done = envplane("verify", "--json", cwd=app)
    assert done.returncode == 1
    violations = json.loads(done.stdout)["violations"]
    assert {"kind": "shared network", "subject": f"{name}-pr-2_default",
            "detail": f"used by {name}/test/pr-1 and {name}/test/pr-2"} in violations
    table = envplane("verify", cwd=app)
    assert table.returncode == 1 and "shared network" in table.stdout


def test_a_held_instance_lock_stops_a_second_up(app: Path) -> None:
    from envplane.state import locks
    from envplane.state.db import open_store

    data = {"DATA_PATH": ""}
    name = app_name(app)
    store = open_store(app)
    with locks.acquire(store, name, "test", "pr-1", holder="someone-else"):
        refused = envplane("up", "test", "--pr", "1", "--no-wait", cwd=app, env=data)
        assert refused.returncode == 1
        assert "someone-else" in refused.stderr
        # A different instance is not blocked by it.
        other = envplane("up", "test", "--pr", "2", "--no-wait", cwd=app, env=data)
        assert other.returncode == 0, other.stderr
    assert envplane("up", "test", "--pr", "1", "--no-wait", cwd=app, env=data).returncode == 0


def test_every_change_is_audited_and_the_chain_verifies(app: Path) -> None:
    data = {"DATA_PATH": "", "ENVPLANE_USER": "alice"}
    assert envplane("up", "test", "--pr", "1", cwd=app, env=data).returncode == 0
    assert envplane("down", "test", "--pr", "1", "--purge", cwd=app, env=data).returncode == 0
    rows = json.loads(envplane("audit", "log", "--json", cwd=app).stdout)
    assert [(r["actor"], r["action"], r["instance"], r["outcome"]) for r in rows][-2:] == [
        ("alice", "up", "pr-1", "ok"), ("alice", "purge", "pr-1", "ok")]
    assert envplane("audit", "verify", cwd=app).returncode == 0


def test_a_port_held_by_another_program_stops_up_before_it_starts_anything(app: Path) -> None:
    import socket

    name = app_name(app)
    with socket.socket() as holder:
        # Like most servers (and like free_port_block's check): a port whose earlier
        # connections still wait in TIME_WAIT can be listened on.
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("0.0.0.0", base(app)))
        holder.listen()
        done = envplane("up", "test", "--pr", "1", cwd=app, env={"DATA_PATH": ""})
    assert done.returncode == 1
    assert f"host port {base(app)}/tcp of web is in use by another program" in done.stderr
    assert labelled(name, "container", "pr-1") == []


def test_a_port_held_by_another_app_is_named(app: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = busybox_app(tmp_path_factory.mktemp("other"), f"ot{os.getpid() % 100000}", base(app))
    data = {"DATA_PATH": ""}
    try:
        assert envplane("up", "test", "--pr", "1", cwd=other, env=data).returncode == 0
        done = envplane("up", "test", "--pr", "1", cwd=app, env=data)
        assert done.returncode == 1
        assert (f"is taken by container {app_name(other)}-web-pr-1 (app {app_name(other)}, instance pr-1)"
                in done.stderr)
    finally:
        envplane("down", "test", "--pr", "1", "--purge", cwd=other, env=data)


def test_logs_of_a_service_and_of_one_that_is_not_there(app: Path) -> None:
    data = {"DATA_PATH": ""}
    assert envplane("up", "test", "--pr", "2", cwd=app, env=data).returncode == 0
    get(f"http://127.0.0.1:{base(app) + 10}/health.txt")
    shown = envplane("logs", "test", "web", "--pr", "2", cwd=app, env=data)
    assert shown.returncode == 0, shown.stderr
    missing = envplane("logs", "test", "db", "--pr", "2", cwd=app, env=data)
    assert missing.returncode == 2
    assert "no service db in" in missing.stderr and "(services: web)" in missing.stderr


def test_a_container_gone_between_listing_and_inspecting_is_just_absent() -> None:
    from envplane.backends.runtime.compose import inspect_existing

    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    image = ensure_busybox_image()
    name = f"envplane-inspect-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--name", name, image, "sleep", "60"], check=True,
                   capture_output=True)
    try:
        found = json.loads(inspect_existing([name, f"{name}-already-removed"]))
        assert [c["Name"] for c in found] == [f"/{name}"]
        assert json.loads(inspect_existing([f"{name}-already-removed"])) == []
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
