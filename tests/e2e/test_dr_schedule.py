"""Schedules, alarms and drills through the CLI (issue 13): a schedule with no verified
backup within its interval is an alarm (`backups status` exits 1); `backup --due` backs up
what is due; a drill prints and stores RPO and RTO, and a missed target exits 1."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    url = os.environ.get("ENVPLANE_TEST_POSTGRES_URL", "")
    need("PostgreSQL", bool(url), "run scripts/services/postgres.sh")
    ensure_busybox_image()
    name = f"ds{uuid.uuid4().hex[:6]}"
    folder = busybox_app(tmp_path / "app", name, free_port_block(20), env_ports=False)
    base = free_port_block(10)
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("  staging:\n    data_path: /tmp/envplane-tests/{app}/staging\n", "")
                    + f"  staging:\n    data_path: {tmp_path}/data/{name}/staging\n    ports: {{web: {{8080: {base}}}}}\n"
                    "    backup: {every: 1h}\n"
                    f"  dr:\n    data_path: {tmp_path}/data/{name}/dr\n    ports: {{web: {{8080: {base + 1}}}}}\n"
                    "    strategy: recreate\n"
                    "resources:\n  postgres: {}\n"
                    "dr:\n  rpo: 1h\n  checks:\n    - {http: /health.txt, contains: ok}\n"
                    "    - {name: tables, sql: 'select count(*) from pg_tables where schemaname = current_schema()', "
                    "expect: 0}\n")
    env = {"ENVPLANE_POSTGRES_URL": url, "ENVPLANE_HOME": str(tmp_path / "home"), "ENVPLANE_SECRETS": "file",
           "XDG_DATA_HOME": str(tmp_path / "share")}
    yield folder, env
    for which in ("staging", "dr"):
        cli("down", which, "--purge", "--no-backup", "--yes", cwd=folder, env=env)


def test_missed_schedules_are_alarms_and_drills_measure_rpo_and_rto(app: tuple[Path, dict[str, str]]) -> None:
    folder, env = app
    assert cli("up", "staging", cwd=folder, env=env).returncode == 0
    done = cli("backups", "status", "--json", cwd=folder, env=env)
    assert done.returncode == 1
    assert {(a["env"], a["kind"]) for a in json.loads(done.stdout)["alarms"]} == {("staging", "schedule")}

    done = cli("backup", "--due", "--json", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert [b["env"] for b in json.loads(done.stdout)["backups"]] == ["staging"]
    assert "no backup is due" in cli("backup", "--due", cwd=folder, env=env).stderr  # just made one

    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("backup: {every: 1h}", "backup: {every: 1s}"))
    time.sleep(1.5)  # the schedule now says every second: the newest backup is older than that
    alarms = json.loads(cli("backups", "status", "--json", cwd=folder, env=env).stdout)["alarms"]
    assert {(a["env"], a["kind"]) for a in alarms} == {("staging", "schedule"), ("staging", "drill")}

    done = cli("dr", "drill", "--env", "staging", "--to", "dr", "--json", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and [c["ok"] for c in report["checks"]] == [True, True]
    assert 0 < report["rpo_seconds"] < 3600 and 0 < report["rto_seconds"] < 3600

    spec.write_text(spec.read_text().replace("dr:\n  rpo: 1h\n", "dr:\n  rpo: 1s\n"))
    done = cli("dr", "drill", "--env", "staging", "--to", "dr", cwd=folder, env=env)
    assert done.returncode == 1
    assert "drill FAILED" in done.stdout and "RPO" in done.stderr and "beyond the target" in done.stderr
    assert "drill" in cli("audit", "log", cwd=folder, env=env).stdout

    # A store that cannot be read is an alarm too, never silence.
    spec.write_text(spec.read_text().replace("backup: {every: 1s}",
                                             "backup: {every: 1s, store: 's3://unreadable-backups/x'}"))
    done = cli("backups", "status", "--json", cwd=folder, env=env)
    assert done.returncode == 1
    alarms = json.loads(done.stdout)["alarms"]
    assert ("staging", "store") in {(a["env"], a["kind"]) for a in alarms}
    assert "needs an S3 server, and none is configured" in next(a["message"] for a in alarms if a["kind"] == "store")


def test_a_flipped_byte_refuses_the_restore_through_the_cli_and_is_audited(
        app: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    folder, env = app
    assert cli("up", "staging", cwd=folder, env=env).returncode == 0
    made = json.loads(cli("backup", "staging", "--json", cwd=folder, env=env).stdout)
    name = json.loads(cli("plan", "staging", "--json", cwd=folder, env=env).stdout)["target"]["app"]
    stored = tmp_path / "share" / "envplane" / "backups" / name / "staging" / made["id"] / "postgres.dump.zst.age"
    data = bytearray(stored.read_bytes())
    data[-5] ^= 0xFF
    stored.write_bytes(bytes(data))
    done = cli("restore", "staging", "--from", made["id"], "--yes", cwd=folder, env=env)
    assert done.returncode == 1
    assert "refusing to restore backup" in done.stderr and "part postgres (postgres.dump.zst.age)" in done.stderr
    assert "refused" in cli("audit", "log", cwd=folder, env=env).stdout
    running = subprocess.run(["docker", "ps", "--filter", f"label=envplane.app={name}", "--filter",
                              "label=envplane.instance=staging", "--format", "{{.State}}"],
                             capture_output=True, text=True).stdout.split()
    assert running == ["running"]  # nothing was stopped: the refusal came before any change
