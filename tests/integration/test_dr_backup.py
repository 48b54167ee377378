"""Backups and restores of one instance against the real servers (issue 13): PostgreSQL,
SeaweedFS S3, the file secret store, a data folder with owners, modes and links.

What a user checks: the stored bytes hold no plaintext; a restore after losing everything
brings rows, objects, files (owners, modes) and secrets back identical; a restore into
another instance carries no credential of the source; a flipped byte is refused before
anything is written, naming the part; a pg_dump killed mid-stream leaves no backup.
"""

from __future__ import annotations

import os
import signal
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import psycopg
import pytest
from botocore.config import Config  # type: ignore[import-untyped]

from envplane import actions
from envplane.apply import Applier
from envplane.dr import manifest as mf
from envplane.dr import restore as dr_restore
from envplane.dr import service
from envplane.dr import store as dr_store
from envplane.dr.keys import identity
from envplane.errors import BackendError
from envplane.lifecycle import Session, open_session
from envplane.provision import Provisioner
from envplane.secret import Secret
from envplane.spec.load import load_project
from tests.support import need

SERVERS = {"ENVPLANE_POSTGRES_URL": "ENVPLANE_TEST_POSTGRES_URL",
           "ENVPLANE_S3_ENDPOINT": "ENVPLANE_TEST_S3_ENDPOINT",
           "ENVPLANE_S3_ACCESS_KEY": "ENVPLANE_TEST_S3_ACCESS_KEY",
           "ENVPLANE_S3_SECRET_KEY": "ENVPLANE_TEST_S3_SECRET_KEY"}
SECRET_ROW = "the-quarterly-figures-are-confidential-4242"
COMPOSE = "services:\n  app:\n    image: busybox:stable\n    command: [sleep, '3600']\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A small app with postgres, s3, a data folder and a user secret, and its environ."""
    environ = {ours: os.environ.get(theirs, "") for ours, theirs in SERVERS.items()}
    need("PostgreSQL and SeaweedFS", all(environ.values()), "run scripts/services/*.sh")
    name = f"dr{uuid.uuid4().hex[:6]}"
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "compose.yaml").write_text(COMPOSE)
    store_bucket = f"{name}-backups"
    (folder / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  app:\n    uses: [postgres, s3]\n    secrets: [API_KEY]\n"
        "resources:\n  postgres: {}\n  s3: {}\n"
        f"backup:\n  store: s3://{store_bucket}/nightly\n"
        "environments:\n"
        f"  staging:\n    data_path: {tmp_path}/data/{name}/staging\n"
        f"  dr:\n    data_path: {tmp_path}/data/{name}/dr\n"
        f"  production:\n    data_path: {tmp_path}/data/{name}/production\n"
        "    backup: {store: " + f"'file://{tmp_path}/store'" + "}\n")
    environ.update({"ENVPLANE_SECRETS": "file", "HOME": str(tmp_path / "home"),
                    "XDG_CONFIG_HOME": str(tmp_path / "config"), "PATH": os.environ["PATH"]})
    project = load_project(folder / "envplane.yaml", environ)
    session = open_session(project, environ)
    yield {"project": project, "environ": environ, "session": session, "name": name, "tmp": tmp_path,
           "store_bucket": store_bucket}
    for env in ("staging", "dr", "production"):
        target = actions.resolve(project, env)
        reach = service.open_instance(project, env, None, environ).reach
        Provisioner(target, reach.servers, reach.secrets, project.root).purge()
    admin = _s3(environ)
    for key in _keys(admin, store_bucket):
        admin.delete_object(Bucket=store_bucket, Key=key)
    admin.delete_bucket(Bucket=store_bucket) if _keys(admin, store_bucket) == [] and _exists(
        admin, store_bucket) else None
    session.store.close()


def _s3(environ: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=environ["ENVPLANE_S3_ENDPOINT"],
                        aws_access_key_id=environ["ENVPLANE_S3_ACCESS_KEY"],
                        aws_secret_access_key=environ["ENVPLANE_S3_SECRET_KEY"], region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}))


def _exists(client: Any, bucket: str) -> bool:
    return bool(client.list_buckets().get("Buckets") and any(
        b["Name"] == bucket for b in client.list_buckets()["Buckets"]))


def _keys(client: Any, bucket: str) -> list[str]:
    if not _exists(client, bucket):
        return []
    return [o["Key"] for p in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in p.get("Contents", [])]


def provision(world: dict[str, Any], env: str) -> service.Opened:
    project, environ = world["project"], world["environ"]
    opened = service.open_instance(project, env, None, environ)
    target = opened.target
    opened.reach.secrets.write(target.service("app").secret_path, {"API_KEY": Secret("key-of-" + target.id)})
    Applier(project, environ=environ).provision_only(actions.plan(project, target))
    return opened


def fill(opened: service.Opened, rows: int = 3) -> None:
    """Rows, objects, files with owners, modes and a link, and a user secret."""
    reach, target = opened.reach, opened.target
    conninfo, password = reach.database_conninfo()
    with psycopg.connect(conninfo, password=password.reveal(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS figures (id int primary key, note text)")
        for i in range(rows):
            conn.execute("INSERT INTO figures VALUES (%s, %s)", (i, f"{SECRET_ROW}-{i}"))
    client = reach.s3_client()
    client.put_object(Bucket=target.bucket, Key="reports/q1.csv", Body=b"a,b\n1,2\n", ContentType="text/csv",
                      Metadata={"author": "ada"})
    client.put_object(Bucket=target.bucket, Key="deep/path with spaces/é ü.bin", Body=os.urandom(3000))
    data = reach.data_path()
    (data / "uploads").mkdir(parents=True, exist_ok=True)
    (data / "uploads" / "a.txt").write_text("hello")
    os.chown(data / "uploads" / "a.txt", 1234, 5678)
    os.chmod(data / "uploads" / "a.txt", 0o640)
    (data / "uploads" / "link").symlink_to("a.txt")


def snapshot(opened: service.Opened) -> dict[str, Any]:
    reach, target = opened.reach, opened.target
    conninfo, password = reach.database_conninfo()
    with psycopg.connect(conninfo, password=password.reveal()) as conn:
        rows = conn.execute("SELECT id, note FROM figures ORDER BY id").fetchall()
    client = reach.s3_client()
    objects = {}
    for key in sorted(_keys(client, str(target.bucket))):
        got = client.get_object(Bucket=target.bucket, Key=key)
        objects[key] = (got["Body"].read(), got.get("ContentType"), got.get("Metadata"))
    files = {}
    root = reach.data_path()
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        files[str(path.relative_to(root))] = (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                                              os.readlink(path) if path.is_symlink() else
                                              path.read_bytes() if path.is_file() else None)
    secrets = {p: {k: v.reveal() for k, v in reach.secrets.read(p).items()}
               for p in reach.secrets.list(target.secrets_prefix)}
    return {"rows": rows, "objects": objects, "files": files, "secrets": secrets}


def restore_into(world: dict[str, Any], source: service.Opened, dest: service.Opened,
                 manifest: mf.Manifest) -> None:
    project, environ = world["project"], world["environ"]
    dr_restore.check_before_restore(source.store, manifest)
    plan = actions.plan(project, dest.target)
    dr_restore.restore_parts(dest.reach, source.store, manifest, identity(dest.target.app, environ),
                             lambda: Applier(project, environ=environ).provision_only(plan),
                             lambda *a: None)


def backup(world: dict[str, Any], opened: service.Opened) -> mf.Manifest:
    session: Session = world["session"]
    return service.run_backup(session, opened, lambda m: None, lambda *a: None).result.manifest


def test_backup_to_s3_holds_no_plaintext_and_restores_everything_after_a_purge(world: dict[str, Any]) -> None:
    opened = provision(world, "staging")
    fill(opened)
    before = snapshot(opened)
    manifest = backup(world, opened)
    assert manifest.verified_at is not None
    assert {p.kind for p in manifest.parts} == {"secrets", "postgres", "data", "bucket"}

    stored = _s3(world["environ"])
    keys = _keys(stored, world["store_bucket"])
    assert f"nightly/{world['name']}/staging/{manifest.id}/manifest.json" in keys
    everything = b"".join(stored.get_object(Bucket=world["store_bucket"], Key=k)["Body"].read() for k in keys)
    assert SECRET_ROW.encode() not in everything and b"key-of-staging" not in everything

    # Lose everything: database, role, bucket, S3 user, secrets, data folder.
    Provisioner(opened.target, opened.reach.servers, opened.reach.secrets, world["project"].root).purge()
    import shutil

    shutil.rmtree(opened.reach.data_path())
    fresh = service.open_instance(world["project"], "staging", None, world["environ"])
    restore_into(world, fresh, fresh, manifest)
    after = snapshot(fresh)
    # The purge deleted the instance's S3 user: its key is dead for good (S3 cannot take a
    # given key back), so provisioning made a new one. Everything else is as it was.
    s3_path = f"{fresh.target.secrets_prefix}/s3"
    assert after["secrets"].pop(s3_path)["access_key_id"] != before["secrets"].pop(s3_path)["access_key_id"]
    assert after == before


def test_restore_into_another_instance_brings_user_secrets_but_no_credential(world: dict[str, Any]) -> None:
    source = provision(world, "production")
    fill(source)
    manifest = backup(world, source)
    dest = provision(world, "dr")
    dr_before = {p: {k: v.reveal() for k, v in dest.reach.secrets.read(p).items()}
                 for p in dest.reach.secrets.list(dest.target.secrets_prefix)}
    restore_into(world, source, dest, manifest)
    got = snapshot(dest)
    assert got["rows"] == snapshot(source)["rows"]
    prefix = dest.target.secrets_prefix
    assert got["secrets"][f"{prefix}/app"] == {"API_KEY": "key-of-production"}
    assert got["secrets"][f"{prefix}/postgres"] == dr_before[f"{prefix}/postgres"]  # its own password
    assert got["secrets"][f"{prefix}/s3"] == dr_before[f"{prefix}/s3"]
    assert not any(p.startswith(source.target.secrets_prefix + "/") for p in got["secrets"])


def test_a_flipped_byte_is_refused_before_anything_is_written_naming_the_part(world: dict[str, Any]) -> None:
    opened = provision(world, "production")
    fill(opened)
    manifest = backup(world, opened)
    part = manifest.part("postgres")
    assert part is not None
    stored = Path(world["tmp"]) / "store" / world["name"] / "production" / manifest.id / part.key
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    conninfo, password = opened.reach.database_conninfo()
    with psycopg.connect(conninfo, password=password.reveal(), autocommit=True) as conn:
        conn.execute("INSERT INTO figures VALUES (99, 'written after the backup')")
    with pytest.raises(BackendError, match=r"part postgres \(postgres.dump.zst.age\), chunk 1 of 1"):
        restore_into(world, opened, opened, manifest)
    assert (99, "written after the backup") in snapshot(opened)["rows"]  # nothing was touched


def _written(pid: int) -> int:
    try:
        lines = Path(f"/proc/{pid}/io").read_text().splitlines()
    except OSError:
        return 0
    return next(int(line.split()[1]) for line in lines if line.startswith("wchar:"))


def _pg_dump_of(database: str, wrapper_too: bool = False) -> int | None:
    """The pg_dump process of `database` (Debian's /usr/bin/pg_dump is a Perl wrapper that
    execs the real one: with wrapper_too, the wrapper counts)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        names = [os.path.basename(a) for a in argv[: 2 if wrapper_too else 1]]
        if b"pg_dump" in names and any(database.encode() in a for a in argv):
            return int(pid)
    return None


def test_a_pg_dump_killed_mid_stream_leaves_no_backup(world: dict[str, Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    opened = provision(world, "production")
    fill(opened)
    conninfo, password = opened.reach.database_conninfo()
    with psycopg.connect(conninfo, password=password.reveal(), autocommit=True) as conn:
        # Random text (zstd cannot shrink it): pg_dump is still writing when the stream starts.
        conn.execute("INSERT INTO figures SELECT i, md5(random()::text) || md5(random()::text) "
                     "FROM generate_series(100, 300000) AS i")
    monkeypatch.setattr(dr_store, "CHUNK", 64 * 1024)
    original = dr_store._FolderWriter.write_from
    killed: list[int] = []

    def killing_writer(self: Any, stream: Any) -> Any:
        """Nothing of the database's stream is read until pg_dump has written 256 KB (its
        output is larger than every pipe and zstd's buffers, so it cannot finish first);
        then it is killed (SIGKILL) mid-stream, and the stream is read on."""
        database = str(opened.target.database)
        if _pg_dump_of(database, wrapper_too=True) is None:
            return original(self, stream)  # another part's stream
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pid = _pg_dump_of(database)
            if pid is not None and _written(pid) >= 256 * 1024:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.01)
        return original(self, stream)

    monkeypatch.setattr(dr_store._FolderWriter, "write_from", killing_writer)
    with pytest.raises(BackendError, match=r"pg_dump failed \(killed by signal 9\)"):
        backup(world, opened)
    assert killed
    assert service.backups_of(opened) == []  # no folder at all: the stored parts were deleted
    runs = [r.status for r in service.rows.backups(world["session"].store, opened.target.app, "production")]
    assert runs == ["failed"]


def test_retention_after_each_verified_backup_deletes_what_no_rule_keeps(world: dict[str, Any]) -> None:
    project, environ = world["project"], world["environ"]
    spec = project.root / "envplane.yaml"
    spec.write_text(spec.read_text().replace(
        "    backup: {store:", "    backup: {keep: {last: 2, daily: 0, weekly: 0, monthly: 0}, store:"))
    world["project"] = project = load_project(spec, environ)
    opened = provision(world, "production")
    made = [backup(world, opened).id for _ in range(3)]
    assert [b.id for b in service.backups_of(opened)] == made[:0:-1]  # the newest two
    dry = service.prune(world["session"], opened, dry_run=True)
    assert dry.delete == () and set(dry.keep) == set(made[1:])
    deleted = [r.backup_id for r in service.rows.backups(world["session"].store, opened.target.app,
                                                         "production") if r.status == "deleted"]
    assert deleted == [made[0]]
