"""The server's scheduler takes the backups the DR schedule says are due (#14, #13), on the real
Docker engine: staging runs, its spec says `backup: {every: 1h}`, and at its first look the
scheduler backs it up — verified, listed by `envplane backups` — and reports the DR alarm that
still stands (no drill yet) as an alert; at its next look nothing is due."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from envplane.server import apps, home
from envplane.server import scheduler as sched
from envplane.state import scheduler_runs as runs
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need

pytestmark = pytest.mark.integration


def test_a_due_backup_is_taken_with_no_one_typing(tmp_path: Path) -> None:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"sbk{os.getpid() % 100000}"
    folder = busybox_app(tmp_path / "app", name, free_port_block())
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("    data_path: /tmp/envplane-tests/{app}/staging\n", (
        f"    data_path: {tmp_path}/data/{name}/staging\n"
        f"    backup: {{store: 'file://{tmp_path}/backups', every: 1h}}\n"), 1))
    environ = {k: v for k, v in os.environ.items() if k != "ENVPLANE_STATE_URL"}
    environ.update(ENVPLANE_SERVER_HOME=str(tmp_path / "server"), ENVPLANE_SCHEDULER="on", ENVPLANE_SCHEDULE_PREVIEW_GC="off",
                   ENVPLANE_SCHEDULE_DRILL="off", DATA_PATH="")
    server = home.open_server_store(environ)
    apps.add(server, folder)
    env = {"ENVPLANE_STATE_URL": "", "DATA_PATH": ""}
    try:
        up = cli("up", "staging", cwd=folder, env=env)
        assert up.returncode == 0, up.stderr
        (tmp_path / "data" / name / "staging" / "ledger.txt").write_text("42\n")
        scheduler = sched.Scheduler(server, environ)
        for thread in scheduler.run_due():
            thread.join(300)
        run = runs.latest(server, "backup", name)
        assert run is not None and run.outcome == "ok", run
        assert run.message.startswith("backed up staging: ")
        listed = cli("backups", "staging", "--json", cwd=folder, env=env)
        assert listed.returncode == 0, listed.stderr
        backups = json.loads(listed.stdout)
        backups = backups if isinstance(backups, list) else backups.get("backups", [])
        assert [b["id"] for b in backups if b.get("verified")] == [run.message.removeprefix("backed up staging: ")]
        found = sched.alerts(server, environ)
        assert [(a.kind, a.id) for a in found] == [("dr", f"backup/{name}/dr/staging/drill")]
        assert scheduler.run_due() == []  # not due again for 15 minutes
    finally:
        cli("down", "staging", "--purge", "--yes", "--no-backup", cwd=folder, env=env)
        server.close()
