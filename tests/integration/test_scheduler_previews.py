"""The server's scheduler collects a preview past its TTL with no one typing (#14), on the real
Docker engine: a PR's preview is up, its PR closes, and the scheduler of a server that has the
app registered purges it at its first look — containers, data and state — and records the run."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envplane.server import apps, home
from envplane.server import scheduler as sched
from envplane.state import audit, instances
from envplane.state import scheduler_runs as runs
from envplane.state.db import open_store
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need

pytestmark = pytest.mark.integration


def containers(fragment: str) -> list[str]:
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           check=True).stdout.split()
    return [n for n in names if fragment in n]


def test_a_preview_past_its_ttl_is_collected_with_no_one_typing(tmp_path: Path) -> None:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"sch{os.getpid() % 100000}"
    folder = busybox_app(tmp_path / "app", name, free_port_block())
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("  test:\n", "  test:\n    ttl: 1s\n", 1))
    environ = {k: v for k, v in os.environ.items() if k != "ENVPLANE_STATE_URL"}
    environ.update(ENVPLANE_SERVER_HOME=str(tmp_path / "server"), ENVPLANE_SCHEDULE_BACKUP="off",
                   ENVPLANE_SCHEDULE_DRILL="off")
    server = home.open_server_store(environ)
    apps.add(server, folder)
    env = {"ENVPLANE_STATE_URL": ""}
    try:
        up = cli("preview", "up", "--pr", "5", cwd=folder, env=env)
        assert up.returncode == 0, up.stderr
        assert containers(f"{name}-")
        own = open_store(folder, None)
        closed = instances.mark_closed(own, name, "test", "pr-5").closed_at  # what the webhook does on `closed`
        own.close()
        assert closed is not None
        while datetime.now(UTC) <= closed + timedelta(seconds=1):  # the TTL runs out
            time.sleep(0.1)
        scheduler = sched.Scheduler(server, environ, tick=0.5).start()
        try:
            deadline = time.monotonic() + 240
            while (runs.latest(server, "preview-gc", name) is None
                   or runs.latest(server, "preview-gc", name).outcome == runs.RUNNING):  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the scheduler did not collect the preview"
                time.sleep(0.2)
        finally:
            scheduler.stop()
        run = runs.latest(server, "preview-gc", name)
        assert run is not None and run.outcome == "ok", run
        assert "destroyed pr-5" in run.message and "TTL 1s" in run.message
        assert run.next_run_at == run.started_at + timedelta(hours=1)
        assert containers(f"{name}-") == []
        own = open_store(folder, None)
        assert instances.get_instance(own, name, "test", "pr-5").status == "purged"  # type: ignore[union-attr]
        purges = [e for e in audit.entries(own) if e.instance == "pr-5" and e.action != "up"]
        own.close()
        assert purges and {e.actor for e in purges} == {sched.ACTOR}  # the audit log names the scheduler
        state = next(s for s in sched.overview(server, environ) if s.job == "preview-gc" and s.app == name)
        assert state.state == "ok" and state.alerts == ()
    finally:
        cli("preview", "down", "--pr", "5", cwd=folder, env=env)
        server.close()
