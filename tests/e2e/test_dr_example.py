"""Issue 13's acceptance test, on the example app as a user runs it: production with rows in
PostgreSQL, objects in its bucket, files in its data folder and a secret is backed up to
the real S3 server; the backup bucket's bytes hold none of a known row's plaintext;
production is purged (database, role, bucket, S3 user, secrets, data folder, containers);
`restore` brings rows, objects, files (owners, modes) and secrets back identical, and the
app answers healthy.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.config import Config  # type: ignore[import-untyped]

from envplane.backends.secrets import open_secret_store
from tests.example_kit import example_copy, http, servers
from tests.support import cli, free_port_block, remove_example_images

KNOWN_ROW = "Confidential merger figures 7f3a"


def s3(env: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=env["ENVPLANE_S3_ENDPOINT"],
                        aws_access_key_id=env["ENVPLANE_S3_ACCESS_KEY"],
                        aws_secret_access_key=env["ENVPLANE_S3_SECRET_KEY"], region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}))


def objects(client: Any, bucket: str) -> dict[str, bytes]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    env = servers()
    base = free_port_block(10)
    folder, name = example_copy(tmp_path, "dr", lambda name: (
        "  production:\n"
        f"    data_path: {tmp_path}/data/{name}/production\n"
        f"    ports:\n      backend: {{8000: {base}}}\n      frontend: {{8080: {base + 1}}}\n"
        f"    backup: {{store: 's3://{name}-backups/nightly'}}\n"),
        lambda text: text.replace("    stateful: false ", "    secrets: [API_KEY]\n    stateful: false "))
    env.update({"ENVPLANE_HOME": str(tmp_path / "home"), "IMAGE_TAG": name, "ENVPLANE_SECRETS": "file",
                "XDG_DATA_HOME": str(tmp_path / "share")})
    yield folder, env, name
    cli("down", "production", "--purge", "--no-backup", "--yes", cwd=folder, env=env)
    client = s3(env)
    for key in objects(client, f"{name}-backups"):
        client.delete_object(Bucket=f"{name}-backups", Key=key)
    client.delete_bucket(Bucket=f"{name}-backups")
    remove_example_images(name)


def files_of(root: Path) -> dict[str, tuple[int, int, int, bytes | None]]:
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        found[str(path.relative_to(root))] = (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                                              path.read_bytes() if path.is_file() else None)
    return found


def test_production_is_backed_up_encrypted_purged_and_restored_identical(
        app: tuple[Path, dict[str, str], str], tmp_path: Path) -> None:
    folder, env, name = app
    done = subprocess.run([*cli_args(), "secrets", "set", "production", "API_KEY", "--service", "backend"],
                          input="s3cr3t-api-key-value\n", cwd=folder, env={**os.environ, **env},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = cli("up", "production", "--build", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    backend = f"http://127.0.0.1:{free_block_port(folder, env)}"
    assert http(f"{backend}/api/reports", {"title": KNOWN_ROW, "amount": 99.5})[0] == 201
    assert http(f"{backend}/api/reports", {"title": "Q4 close", "amount": 1250})[0] == 201
    reports = http(f"{backend}/api/reports")[1]
    client = s3(env)
    client.put_object(Bucket=f"{name}-production", Key="ledgers/2026.csv", Body=b"q1,q2\n1,2\n")
    data = tmp_path / "data" / name / "production"
    (data / "uploads").mkdir(parents=True, exist_ok=True)
    (data / "uploads" / "scan.pdf").write_bytes(os.urandom(5000))
    os.chown(data / "uploads" / "scan.pdf", 1001, 1002)
    os.chmod(data / "uploads" / "scan.pdf", 0o640)
    files = files_of(data)
    store = open_secret_store("file", folder, env, name)
    secrets_before = {p: {k: v.reveal() for k, v in store.read(p).items()}
                      for p in store.list(f"secret/data/{name}/production")}

    done = cli("backup", "production", "--json", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["verified"] and set(made["parts"]) == {"secrets", "postgres", "data", "bucket"}
    stored = objects(client, f"{name}-backups")
    assert f"nightly/{name}/production/{made['id']}/manifest.json" in stored
    everything = b"".join(stored.values())
    assert KNOWN_ROW.encode() not in everything and b"s3cr3t-api-key-value" not in everything
    listed = json.loads(cli("backups", "production", "--json", cwd=folder, env=env).stdout)
    assert [(b["id"], b["verified"]) for b in listed] == [(made["id"], True)]

    done = cli("down", "production", "--purge", "--yes", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert "final backup" in done.stderr  # production is backed up before a purge deletes it
    assert not data.exists() and store.list(f"secret/data/{name}/production") == []
    listed = json.loads(cli("backups", "production", "--json", cwd=folder, env=env).stdout)
    assert len(listed) == 2 and all(b["verified"] for b in listed)

    done = cli("restore", "production", "--from", made["id"], cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    status, health = http(f"{backend}/api/health")
    assert status == 200, health
    assert http(f"{backend}/api/reports")[1] == reports
    assert objects(client, f"{name}-production") == {"ledgers/2026.csv": b"q1,q2\n1,2\n"}
    assert files_of(data) == files
    after = {p: {k: v.reveal() for k, v in store.read(p).items()}
             for p in store.list(f"secret/data/{name}/production")}
    # The purge deleted the S3 user: its key is dead for good, the restore made a new one.
    s3_path = f"secret/data/{name}/production/s3"
    assert after.pop(s3_path) != secrets_before.pop(s3_path)
    assert after == secrets_before


def cli_args() -> list[str]:
    import sys

    return [sys.executable, "-m", "envplane"]


def free_block_port(folder: Path, env: dict[str, str]) -> int:
    plan = json.loads(cli("plan", "production", "--json", cwd=folder, env=env).stdout)
    backend = next(s for s in plan["target"]["services"] if s["name"] == "backend")
    return int(next(p["published"] for p in backend["ports"] if p["target"] == 8000))
