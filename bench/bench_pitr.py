"""Point-in-time recovery on the platform's PostgreSQL (issue 13), measured: the RPO that
WAL archiving achieves (from a commit until the segment holding it is in the archive, with
the spec's archive_timeout), the base backup, and a `restore --at`.

Starts a SeaweedFS of its own over HTTPS (pgBackRest's S3 needs TLS) and the `ci` platform.
Usage: .venv/bin/python bench/bench_pitr.py [SAMPLES] [ARCHIVE_TIMEOUT]   (default 3 60s)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from envplane.backends.database.postgres import PostgresDatabases
from envplane.backends.secrets import open_secret_store
from envplane.platform import layer
from envplane.secret import Secret
from tests.tls_s3 import tls_seaweedfs


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "envplane", *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"envplane {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done


def archived_after(admin_url: Secret, moment: datetime) -> datetime:
    """Wait until a WAL segment is archived at or after `moment`; return when it was."""
    with psycopg.connect(admin_url.reveal(), autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT last_archived_time FROM pg_stat_archiver").fetchone()
            if row is not None and row[0] is not None and row[0] >= moment:
                return row[0]  # type: ignore[no-any-return]
            time.sleep(0.2)


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    timeout = sys.argv[2] if len(sys.argv) > 2 else "60s"
    root = Path(tempfile.mkdtemp(prefix="bench-pitr-"))
    subprocess.run(["bash", str(Path(__file__).resolve().parents[1] / "scripts" / "images.sh")], check=True)
    with tls_seaweedfs(root / "weed") as s3:
        env = {**s3, "ENVPLANE_POSTGRES_URL": "", "ENVPLANE_REDIS_URL": "", "ENVPLANE_SECRETS": "file",
               "ENVPLANE_HOME": str(root / "home"), "XDG_DATA_HOME": str(root / "share"),
               "XDG_CONFIG_HOME": str(root / "config")}
        platform_env = {**env, "DATA_PATH": str(root / "platform")}
        cli("platform", "up", "ci", cwd=root, env=platform_env)
        try:
            run(root, env, samples, timeout)
        finally:
            subprocess.run([sys.executable, "-m", "envplane", "down", "ci", "--purge", "--yes"],
                           cwd=root / "app", env={**os.environ, **env}, capture_output=True)
            subprocess.run([sys.executable, "-m", "envplane", "platform", "down", "ci", "--purge", "--yes"],
                           cwd=root, env={**os.environ, **platform_env}, capture_output=True)


def run(root: Path, env: dict[str, str], samples: int, timeout: str) -> None:
    name = f"bp{uuid.uuid4().hex[:6]}"
    folder = root / "app"
    folder.mkdir()
    (folder / "compose.yaml").write_text("services:\n  app:\n    image: busybox:stable\n"
                                         "    command: [sleep, '3600']\n    init: true\n")
    (folder / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  app:\n    uses: [postgres]\nresources:\n  postgres: {}\n"
        f"backup:\n  store: s3://{name}-backups/nightly\n  archive_timeout: {timeout}\n"
        "environments:\n  ci:\n    instances: one\n    suffix: -ci\n    domain_suffix: -ci\n"
        f"    secrets_env: ci\n    data_path: {root}/data/ci\n")
    cli("provision", "ci", cwd=folder, env=env)
    admin = layer.servers_of("ci", {**os.environ, **env})
    assert admin is not None and isinstance(admin["postgres"], Secret)
    admin_url = admin["postgres"]
    secrets = open_secret_store("file", folder, env, name)
    password = secrets.read(f"secret/data/{name}/ci/postgres")["password"]
    url = PostgresDatabases(admin_url).url(f"{name}_ci", password).reveal()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE ledger (id bigint primary key, note text)")
        conn.execute("INSERT INTO ledger SELECT i, md5(i::text) FROM generate_series(1, 500000) AS i")
    started = time.perf_counter()
    done = cli("backup", "ci", "--json", cwd=folder, env=env)
    print(f"first backup incl. archive setup and a full base backup: {time.perf_counter() - started:.1f} s "
          f"({json.loads(done.stdout)['archiving']})")
    lags = []
    for index in range(samples):
        with psycopg.connect(url, autocommit=True) as conn:
            committed = conn.execute("INSERT INTO ledger VALUES (%s, 'rpo') RETURNING clock_timestamp()",
                                     (10_000_000 + index,)).fetchone()[0]  # type: ignore[index]
        lags.append((archived_after(admin_url, committed) - committed).total_seconds())
        print(f"  commit {index + 1}: in the archive {lags[-1]:.1f} s later")
    print(f"RPO with archiving (archive_timeout {timeout}): worst {max(lags):.1f} s of {samples}")
    at = datetime.now(UTC)
    with psycopg.connect(admin_url.reveal(), autocommit=True) as conn:  # so `at` is in the archive
        switched = conn.execute("SELECT clock_timestamp(), pg_switch_wal()").fetchone()[0]  # type: ignore[index]
    archived_after(admin_url, switched)
    started = time.perf_counter()
    cli("restore", "ci", "--at", at.isoformat(), "--yes", cwd=folder, env=env)
    print(f"restore --at (cluster restored in a throwaway container, database dumped and swapped in): "
          f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
