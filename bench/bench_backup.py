"""Backups and restores of a few-hundred-MB instance on the real servers (issue 13).

Prints, asserting nothing:
- raw `pg_dump -Fc > /dev/null` (pg_dump's own zlib), the baseline;
- envplane's backup: each part streamed `source | zstd | age` into a multipart upload to
  SeaweedFS, then read back and verified; the ratio of the streaming to the baseline;
- the restore (every chunk checked first, database restored beside and swapped in);
- bytes a second backup uploads after 1 % of the rows changed (the format is a full
  backup each time: no dedup; see the last line);
- a drill's RTO and RPO through the CLI (restore into dr, up, health, checks).

Usage: eval the export lines of scripts/services/{postgres,seaweedfs,docker}.sh, then
       .venv/bin/python bench/bench_backup.py [MEGABYTES]   (default 300)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from envplane import actions
from envplane.apply import Applier
from envplane.dr import restore as dr_restore
from envplane.dr import service
from envplane.dr.keys import identity
from envplane.lifecycle import open_session
from envplane.provision import Provisioner
from envplane.spec.load import load_project

COMPOSE = """\
services:
  web:
    image: busybox:stable
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro"]
    init: true
"""


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def main() -> None:
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    name = f"bb{uuid.uuid4().hex[:6]}"
    root = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    environ = {
        "ENVPLANE_POSTGRES_URL": os.environ["ENVPLANE_TEST_POSTGRES_URL"],
        "ENVPLANE_S3_ENDPOINT": os.environ["ENVPLANE_TEST_S3_ENDPOINT"],
        "ENVPLANE_S3_ACCESS_KEY": os.environ["ENVPLANE_TEST_S3_ACCESS_KEY"],
        "ENVPLANE_S3_SECRET_KEY": os.environ["ENVPLANE_TEST_S3_SECRET_KEY"],
        "ENVPLANE_SECRETS": "file", "XDG_CONFIG_HOME": str(root / "config"),
        "HOME": str(root / "home"),
        "ENVPLANE_HOME": str(root / "envplane-home"), "PATH": os.environ["PATH"],
        "ENVPLANE_CADDY_LISTEN": "127.0.0.1:24290", "ENVPLANE_CADDY_ADMIN": "http://127.0.0.1:24291",
    }
    (root / "www").mkdir()
    (root / "www" / "health.txt").write_text("ok\n")
    (root / "compose.yaml").write_text(COMPOSE)
    (root / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    public: 8080\n    health: /health.txt\n    uses: [postgres, s3]\n"
        "resources:\n  postgres: {}\n  s3: {}\n"
        f"backup:\n  store: s3://{name}-backups/bench\n"
        "dr:\n  checks:\n    - {http: /health.txt, contains: ok}\n"
        "environments:\n"
        f"  staging:\n    data_path: {root}/data/staging\n    ports: {{web: {{8080: 24280}}}}\n"
        f"  dr:\n    data_path: {root}/data/dr\n    ports: {{web: {{8080: 24281}}}}\n"
        "    strategy: recreate\n")
    project = load_project(root / "envplane.yaml", environ)
    session = open_session(project, environ)
    try:
        run(project, session, environ, root, megabytes)
    finally:
        for env in ("staging", "dr"):
            subprocess.run([sys.executable, "-m", "envplane", "down", env, "--purge", "--yes"], cwd=root,
                           env={**os.environ, **environ}, capture_output=True)
            opened = service.open_instance(project, env, None, environ)
            Provisioner(opened.target, opened.reach.servers, opened.reach.secrets, project.root).purge()
        subprocess.run([sys.executable, "-m", "envplane", "proxy", "down"], cwd=root,
                       env={**os.environ, **environ}, capture_output=True)
        client = opened.reach.s3_client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=f"{name}-backups"):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=f"{name}-backups", Key=item["Key"])
        client.delete_bucket(Bucket=f"{name}-backups")
        session.store.close()
        shutil.rmtree(root, ignore_errors=True)


def run(project, session, environ, root, megabytes) -> None:  # type: ignore[no-untyped-def]
    opened = service.open_instance(project, "staging", None, environ)
    Applier(project, environ=environ).provision_only(actions.plan(project, opened.target))
    conninfo, password = opened.reach.database_conninfo()
    rows = megabytes * 1_000_000 // 200
    started = time.perf_counter()
    with psycopg.connect(conninfo, password=password.reveal(), autocommit=True) as conn:
        conn.execute("CREATE TABLE ledger (id bigint primary key, note text, amount numeric)")
        conn.execute("INSERT INTO ledger SELECT i, md5(i::text) || repeat(md5(random()::text), 4), "
                     "random() * 1e6 FROM generate_series(1, %s) AS i", (rows,))
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
    print(f"database: {rows} rows, {mb(size)} on disk (made in {time.perf_counter() - started:.0f} s)")
    data = opened.reach.data_path()
    data.mkdir(parents=True, exist_ok=True)
    (data / "blob.bin").write_bytes(os.urandom(20_000_000))
    client = opened.reach.s3_client()
    for i in range(20):
        client.put_object(Bucket=opened.target.bucket, Key=f"objects/{i}.bin", Body=os.urandom(1_000_000))

    env = {**os.environ, "PGPASSWORD": password.reveal()}
    raw = []
    for _ in range(2):
        started = time.perf_counter()
        subprocess.run(["pg_dump", "-Fc", f"--dbname={conninfo}"], env=env, stdout=subprocess.DEVNULL,
                       check=True)
        raw.append(time.perf_counter() - started)
    baseline = min(raw)
    print(f"raw pg_dump -Fc > /dev/null: {baseline:.2f} s (best of 2)")

    parts: dict[str, float] = {}

    def on_part(kind: str, state: str, seconds: float, size: int) -> None:
        parts[kind] = seconds
        print(f"  part {kind}: {mb(size)} in {seconds:.2f} s")

    started = time.perf_counter()
    first = service.run_backup(session, opened, lambda m: None, on_part).result
    total = time.perf_counter() - started
    print(f"backup: {mb(first.manifest.size)} uploaded, {total:.2f} s in all (streaming "
          f"{sum(parts.values()):.2f} s, then read back and verified)")
    print(f"database part ÷ raw pg_dump -Fc: {parts['postgres'] / baseline:.2f}")

    plan = actions.plan(project, opened.target)
    started = time.perf_counter()
    dr_restore.check_before_restore(opened.store, first.manifest)
    checked = time.perf_counter() - started
    dr_restore.restore_parts(opened.reach, opened.store, first.manifest, identity(project.app, environ),
                             lambda: Applier(project, environ=environ).provision_only(plan),
                             lambda kind, state, seconds, size: print(f"  restore {kind}: {seconds:.2f} s"))
    print(f"restore: {time.perf_counter() - started:.2f} s "
          f"(of which checking every chunk first {checked:.2f} s)")

    with psycopg.connect(conninfo, password=password.reveal(), autocommit=True) as conn:
        conn.execute("UPDATE ledger SET amount = amount + 1 WHERE id % 100 = 0")
    second = service.run_backup(session, opened, lambda m: None, lambda *a: None).result
    db1, db2 = first.manifest.part("postgres"), second.manifest.part("postgres")
    assert db1 is not None and db2 is not None
    print(f"second backup after 1 % of the rows changed: {mb(second.manifest.size)} uploaded "
          f"(database part {mb(db2.size)} vs {mb(db1.size)}): every backup is full, nothing is deduplicated")

    cli_env = {**os.environ, **environ}
    subprocess.run([sys.executable, "-m", "envplane", "up", "staging"], cwd=root, env=cli_env, check=True,
                   capture_output=True)
    done = subprocess.run([sys.executable, "-m", "envplane", "dr", "drill", "--env", "staging", "--to", "dr",
                           "--json"], cwd=root, env=cli_env, capture_output=True, text=True)
    report = json.loads(done.stdout)
    print(f"drill (restore into dr, up, health, checks): RTO {report['rto_seconds']:.1f} s, "
          f"RPO {report['rpo_seconds']:.1f} s (the age of the newest backup), ok={report['ok']}")


if __name__ == "__main__":
    main()
