"""`preview gc` of several previews at once, on the real engine (#11 scale): it removes every
closed preview and only those, and each removal still holds its own instance's lock."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envplane import lifecycle, preview
from envplane.spec.load import load_project
from envplane.state import instances, locks
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[Path]:
    need("docker", docker_engine(), "bash scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"gm{os.getpid() % 100000}"
    folder = busybox_app(tmp_path / "app", name, free_port_block())
    yield folder
    label = f"label=envplane.app={name}"
    for kind, query in (("container", ["ps", "-aq"]), ("network", ["network", "ls", "-q"]),
                        ("volume", ["volume", "ls", "-q"])):
        ids = subprocess.run(["docker", *query, "--filter", label], capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", *(["rm", "-f"] if kind == "container" else [kind, "rm"]), *ids],
                           capture_output=True)


def running_instances(app_name: str) -> set[str]:
    listed = subprocess.run(["docker", "ps", "--filter", f"label=envplane.app={app_name}",
                             "--format", '{{.Label "envplane.instance"}}'], capture_output=True, text=True)
    return set(listed.stdout.split())


def test_gc_removes_every_closed_preview_and_only_those(app: Path) -> None:
    env = {"DATA_PATH": ""}
    for pr in (1, 2, 3):
        done = cli("preview", "up", "--pr", str(pr), cwd=app, env=env)
        assert done.returncode == 0, done.stderr
    project = load_project(app / "envplane.yaml", {})
    session = lifecycle.open_session(project, {})
    for pr in (1, 3):
        instances.mark_closed(session.store, project.app, "test", f"pr-{pr}")
    assert running_instances(project.app) == {"pr-1", "pr-2", "pr-3"}

    done = cli("preview", "gc", "--ttl", "0s", "--json", cwd=app, env=env)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["previews"]
    assert sorted((p["instance"], p["destroyed"]) for p in report) == [("pr-1", True), ("pr-3", True)]
    assert running_instances(project.app) == {"pr-2"}
    status = {r.instance: r.status for r in instances.list_instances(session.store, project.app)}
    assert (status["pr-1"], status["pr-3"]) == ("purged", "purged") and status["pr-2"] != "purged"
    cli("preview", "down", "--pr", "2", cwd=app, env=env)


def test_gc_purges_each_preview_under_its_own_lock_and_leaves_a_held_one(app: Path) -> None:
    project = load_project(app / "envplane.yaml", {})
    session = lifecycle.open_session(project, {})
    session.wait = False  # a held lock fails at once instead of waiting for its holder
    for pr in (4, 5, 6):
        instances.upsert_instance(session.store, project.app, "test", f"pr-{pr}", "down")
        instances.mark_closed(session.store, project.app, "test", f"pr-{pr}")

    with locks.acquire(session.store, project.app, "test", "pr-5", holder="someone else"):
        done = preview.collect(session, timedelta(0), timedelta(days=14), False, datetime.now(UTC), workers=3)

    outcome = {d.instance: (d.outcome, d.detail) for d in done}
    assert outcome["pr-4"] == ("destroyed", "") and outcome["pr-6"] == ("destroyed", "")
    assert outcome["pr-5"][0] == "failed" and "someone else" in outcome["pr-5"][1]
    status = {r.instance: r.status for r in instances.list_instances(session.store, project.app)}
    assert status["pr-4"] == status["pr-6"] == "purged"
    assert status["pr-5"] == "down"  # nothing of it was touched without its lock
