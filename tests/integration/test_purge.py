"""Purge deletes only what the instance owns, never forgets what it could not drop, and a
failure half-way leaves records that say so (issue 9, items 2, 9, 11, 18).

Through the CLI as a user runs it, on the real Docker engine, PostgreSQL and a Redis of the
test's own (so that the test can stop it and start it again).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from envplane.backends.database.postgres import PostgresDatabases
from envplane.backends.secrets import open_secret_store
from envplane.secret import Secret
from envplane.state import audit, instances
from envplane.state.db import open_store
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need

ENV = {"DATA_PATH": "", "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}


def busybox(folder: Path, test_data: str, resources: bool = False) -> tuple[Path, str]:
    """The busybox app, its PRs' data under `test_data` (a template), optionally with resources."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"pg{uuid.uuid4().hex[:6]}"
    busybox_app(folder, name, free_port_block())
    spec = folder / "envplane.yaml"
    text = spec.read_text().replace("  staging:\n", f"    data_path: {test_data}\n  staging:\n")
    if resources:
        text = text.replace("    health: /health.txt\n", "    health: /health.txt\n    uses: [postgres, redis]\n")
        text += "resources:\n  postgres: {}\n  redis: {}\n"
    spec.write_text(text)
    return folder, name


def running(name: str, instance: str) -> list[str]:
    return subprocess.run(["docker", "ps", "--filter", f"label=envplane.app={name}", "--filter",
                           f"label=envplane.instance={instance}", "--format", "{{.Names}}"],
                          capture_output=True, text=True, check=True).stdout.split()


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    folder, name = busybox(tmp_path / "app", str(tmp_path / "data" / "test" / "{app}-pr-{pr}"))
    yield folder, name
    for args in (["down", "test", "--pr", "5", "--purge"], ["down", "staging", "--purge", "--yes"]):
        cli(*args, cwd=folder, env=ENV)
    shutil.rmtree(f"/tmp/envplane-tests/{name}", ignore_errors=True)  # staging's parent folder


def test_a_hostile_data_path_at_purge_time_deletes_nothing_it_does_not_own(
        app: tuple[Path, str], tmp_path: Path) -> None:
    folder, name = app
    assert cli("up", "test", "--pr", "5", cwd=folder, env=ENV).returncode == 0
    owned = tmp_path / "data" / "test" / f"{name}-pr-5"
    assert (owned / "webdata").is_dir()
    work = tmp_path / "work"  # the user's folder, e.g. DATA_PATH=~/work
    (work / "src").mkdir(parents=True)
    (work / "src" / "main.py").write_text("print('mine')\n")
    lookalike = tmp_path / "other" / f"{name}-pr-5"  # passes the naming rule, holds someone's files
    lookalike.mkdir(parents=True)
    (lookalike / "notes.txt").write_text("not envplane's\n")

    for hostile in (str(work), str(lookalike), str(tmp_path), "."):
        done = cli("down", "test", "--pr", "5", "--purge", cwd=folder, env={**ENV, "DATA_PATH": hostile})
        assert done.returncode == 2, done.stderr
        assert "DATA_PATH" in done.stderr
    gc = json.loads(cli("preview", "gc", "--idle", "0s", "--json", cwd=folder,
                        env={**ENV, "DATA_PATH": str(work)}).stdout)
    assert [(p["instance"], p["outcome"]) for p in gc["previews"]] == [("pr-5", "failed")]
    assert "DATA_PATH" in gc["previews"][0]["detail"]
    # nothing changed: the user's files, the instance, its data
    assert (work / "src" / "main.py").read_text() == "print('mine')\n"
    assert (lookalike / "notes.txt").exists()
    assert running(name, "pr-5") and (owned / "webdata").is_dir()

    # without DATA_PATH: the path recorded at its first up, and only that
    done = cli("down", "test", "--pr", "5", "--purge", cwd=folder, env=ENV)
    assert done.returncode == 0, done.stderr
    assert not owned.exists() and not running(name, "pr-5")
    assert (work / "src" / "main.py").exists() and (lookalike / "notes.txt").exists()
    assert (tmp_path / "data" / "test").is_dir()  # the parent, shared with other PRs, stays


def test_an_instance_keeps_the_data_path_of_its_first_up(app: tuple[Path, str], tmp_path: Path) -> None:
    folder, name = app
    first = tmp_path / "elsewhere" / f"{name}-pr-5"
    assert cli("up", "test", "--pr", "5", cwd=folder, env={**ENV, "DATA_PATH": str(first)}).returncode == 0
    again = cli("up", "test", "--pr", "5", cwd=folder, env={**ENV, "DATA_PATH": str(tmp_path / "x" / f"{name}-pr-5")})
    assert again.returncode == 2 and "recorded at its first `up`" in again.stderr
    plan = json.loads(cli("plan", "test", "--pr", "5", "--json", cwd=folder, env=ENV).stdout)
    assert plan["target"]["data_path"] == str(first)  # not the spec's: the recorded one
    assert cli("down", "test", "--pr", "5", "--purge", cwd=folder, env=ENV).returncode == 0
    assert not first.exists()


def test_purging_staging_needs_a_confirmation(app: tuple[Path, str], tmp_path: Path) -> None:
    folder, name = app
    assert cli("up", "staging", cwd=folder, env=ENV).returncode == 0
    refused = cli("down", "staging", "--purge", cwd=folder, env=ENV)  # no terminal here
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert running(name, "staging") and Path(f"/tmp/envplane-tests/{name}/staging").is_dir()
    done = cli("down", "staging", "--purge", "--yes", cwd=folder, env=ENV)
    assert done.returncode == 0, done.stderr
    assert not running(name, "staging") and not Path(f"/tmp/envplane-tests/{name}/staging").exists()


def test_a_restore_replaces_only_the_recorded_data_path_never_one_named_by_data_path(
        app: tuple[Path, str], tmp_path: Path) -> None:
    folder, name = app
    env = {**ENV, "ENVPLANE_HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "share")}
    assert cli("up", "staging", cwd=folder, env=env).returncode == 0
    made = cli("backup", "staging", "--json", cwd=folder, env=env)
    assert made.returncode == 0, made.stderr
    backup_id = json.loads(made.stdout)["id"]
    data = Path(f"/tmp/envplane-tests/{name}/staging")
    (data / "after-the-backup.txt").write_text("newer than the backup\n")
    work = tmp_path / "work" / name / "staging"  # passes the naming rule: only the record tells
    (work / "src").mkdir(parents=True)
    (work / "src" / "main.py").write_text("print('mine')\n")

    refused = cli("restore", "staging", "--from", backup_id, "--yes", cwd=folder, env={**env, "DATA_PATH": str(work)})
    assert refused.returncode == 2, refused.stderr
    assert "DATA_PATH" in refused.stderr and str(data) in refused.stderr
    assert (work / "src" / "main.py").read_text() == "print('mine')\n"
    assert (data / "after-the-backup.txt").exists() and running(name, "staging")


@pytest.mark.parametrize(("value", "why"), [
    (".", "is not an absolute path"),
    ("/", "is too close to the root"),
    ("data/{app}-pr-{pr}", "is not an absolute path"),
    ("/tmp/envplane-tests/{app}/staging/{app}-pr-{pr}", "is claimed by both test pr-5 and staging"),
])
def test_a_bad_data_path_in_the_spec_is_refused_at_plan_time(tmp_path: Path, value: str, why: str) -> None:
    folder, _ = busybox(tmp_path, value)
    for command in (["plan", "test", "--pr", "5"], ["up", "test", "--pr", "5"]):
        done = cli(*command, cwd=folder, env=ENV)
        assert done.returncode == 2
        assert "environments.test.data_path: " in done.stderr
        assert why in done.stderr and f"envplane.yaml:{line_of(folder, 'data_path: ' + value)}" in done.stderr
    assert not (folder / ".envplane" / "state.db").exists()  # nothing was changed


def line_of(folder: Path, text: str) -> int:
    lines = (folder / "envplane.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip() == text)


def test_a_permission_error_half_way_leaves_the_deployment_failed_with_an_audit_row(tmp_path: Path) -> None:
    # sysfs refuses mkdir even to root: a real PermissionError from the kernel, no mock
    folder, name = busybox(tmp_path, "/sys/envplane-tests/{app}-pr-{pr}")
    done = cli("up", "test", "--pr", "5", cwd=folder, env=ENV)
    assert done.returncode == 1 and "PermissionError" in done.stderr
    store = open_store(folder)
    try:
        [deployment] = instances.deployments(store, name, "test", "pr-5")
        assert deployment.status == "failed" and deployment.finished_at is not None
        steps = instances.steps(store, deployment.id)
        assert "running" not in {s.status for s in steps}
        assert steps[-1].kind == "directory" and steps[-1].status == "failed"
        [row] = [e for e in audit.entries(store) if e.instance == "pr-5"]
        assert row.outcome == "failed" and row.detail["error"].startswith("PermissionError: ")
    finally:
        store.close()


def test_a_reopened_and_redeployed_pr_survives_gc(app: tuple[Path, str]) -> None:
    folder, name = app
    assert cli("preview", "up", "--pr", "5", cwd=folder, env=ENV).returncode == 0
    store = open_store(folder)
    try:
        instances.mark_closed(store, name, "test", "pr-5")  # what the webhook's `closed` records
    finally:
        store.close()
    assert cli("preview", "up", "--pr", "5", cwd=folder, env=ENV).returncode == 0  # reopened: redeployed
    gc = json.loads(cli("preview", "gc", "--ttl", "0s", "--json", cwd=folder, env=ENV).stdout)
    assert gc["previews"] == []
    assert running(name, "pr-5")


class PrivateRedis:
    """A Redis of this test's own, on a free port, saving its keys on shutdown."""

    def __init__(self, folder: Path) -> None:
        need("redis-server", shutil.which("redis-server") is not None, "apt-get install redis-server")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.port = folder, free_port_block(1)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "3600 1", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it goes
                redis.Redis.from_url(self.url).shutdown(save=True)
            self.process.wait(timeout=20)


def test_a_partial_purge_keeps_the_secrets_and_gc_finishes_it_once_the_server_is_back(
        tmp_path: Path) -> None:
    pg_url = os.environ.get("ENVPLANE_TEST_POSTGRES_URL", "")
    need("PostgreSQL", bool(pg_url), "run scripts/services/postgres.sh")
    folder, name = busybox(tmp_path / "app", str(tmp_path / "data" / "{app}-pr-{pr}"), resources=True)
    cache = PrivateRedis(tmp_path / "redis")
    cache.start()
    servers = {**ENV, "ENVPLANE_POSTGRES_URL": pg_url, "ENVPLANE_REDIS_URL": cache.url}
    try:
        assert cli("preview", "up", "--pr", "5", cwd=folder, env=servers).returncode == 0
        prefix = f"{name}:pr-5:"
        redis.Redis.from_url(cache.url).set(prefix + "session", "x")
        cache.stop()  # the Redis is down, and the PostgreSQL is not configured at purge time

        done = cli("preview", "down", "--pr", "5", cwd=folder, env={**servers, "ENVPLANE_POSTGRES_URL": ""})
        assert done.returncode == 1
        assert "partial" in done.stderr and "postgres: " in done.stderr and "redis: " in done.stderr
        assert not running(name, "pr-5") and not (tmp_path / "data" / f"{name}-pr-5").exists()
        secrets = open_secret_store("file", folder, servers, name)
        assert secrets.read(f"secret/data/{name}/test-pr-5/postgres")["password"]  # kept to drop them later
        assert secrets.read(f"secret/data/{name}/test-pr-5/redis")["password"]
        listed = {p["pr"]: p["status"] for p in json.loads(cli("preview", "list", "--json", cwd=folder).stdout)}
        assert listed == {"pr-5": "partial"}
        shown_run = cli("status", "--json", cwd=folder, env=servers)
        assert shown_run.returncode == 0, shown_run.stderr
        shown = json.loads(shown_run.stdout)
        assert [(s["instance"], s["state"]) for s in shown] == [("pr-5", "partial")]
        db = PostgresDatabases(Secret(pg_url)).observe(f"{name}_pr_5")
        assert db.role and db.database  # still there: nothing was forgotten

        cache.start()  # the server is back (with the keys it saved)
        gc = json.loads(cli("preview", "gc", "--json", cwd=folder, env=servers).stdout)
        assert [(p["instance"], p["outcome"]) for p in gc["previews"]] == [("pr-5", "destroyed")]
        db = PostgresDatabases(Secret(pg_url)).observe(f"{name}_pr_5")
        assert not db.role and not db.database
        assert redis.Redis.from_url(cache.url).keys(prefix + "*") == []
        assert secrets.list(f"secret/data/{name}/test-pr-5") == []
        listed = {p["pr"]: p["status"] for p in json.loads(cli("preview", "list", "--json", cwd=folder).stdout)}
        assert listed == {"pr-5": "purged"}
    finally:
        if cache.process is None or cache.process.poll() is not None:
            cache.start()
        cli("preview", "down", "--pr", "5", cwd=folder, env=servers)
        cache.stop()
