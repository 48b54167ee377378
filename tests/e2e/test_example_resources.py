"""Issue 4's acceptance test: staging and PR 5 of the example app come up with their own
database, bucket, Redis user and secrets; the app's /api/health reports all three
reachable from inside its container; purging PR 5 leaves staging's data intact and no
trace of PR 5 in PostgreSQL, S3, Redis or the secret store.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from envplane.backends.cache.redis import RedisUsers
from envplane.backends.database.postgres import PostgresDatabases
from envplane.backends.objects.s3 import S3Store
from envplane.backends.secrets import open_secret_store
from envplane.secret import Secret
from tests.example_kit import example_copy, http, servers
from tests.support import cli, free_port_block, remove_example_images


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    env = servers()
    base = free_port_block(60)
    folder, name = example_copy(tmp_path, "rs", lambda name: (
        f"  test:\n    port_base: {base}\n"
        f"  staging:\n    ports:\n      backend: {{8000: {base + 55}}}\n      frontend: {{8080: {base + 56}}}\n"))
    env.update({"ENVPLANE_HOME": str(tmp_path / "home"), "IMAGE_TAG": name, "ENVPLANE_SECRETS": "file"})
    yield folder, env, name
    for args in (["down", "test", "--pr", "5", "--purge"], ["down", "staging", "--purge", "--yes"]):
        cli(*args, cwd=folder, env=env)  # each at the data path recorded at its first up
    remove_example_images(name)


def preview_s3_client(container: str, env: dict[str, str]) -> Any:
    """An S3 client with the key the container holds (read from inside it)."""
    def inside(name: str) -> str:
        return subprocess.run(["docker", "exec", container, "python", "-c",
                               f"import os; print(os.environ['{name}'])"], capture_output=True,
                              text=True, check=True).stdout.strip()

    key = inside("S3_ACCESS_KEY_ID")
    assert key and key != env["ENVPLANE_S3_ACCESS_KEY"]  # never the admin key
    assert inside("S3_SECRET_ACCESS_KEY") != env["ENVPLANE_S3_SECRET_KEY"]
    return boto3.client("s3", endpoint_url=env["ENVPLANE_S3_ENDPOINT"], aws_access_key_id=key,
                        aws_secret_access_key=inside("S3_SECRET_ACCESS_KEY"), region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def backend_url(folder: Path, env: dict[str, str], *args: str) -> str:
    plan = json.loads(cli("plan", *args, "--json", cwd=folder, env=env).stdout)
    backend = next(s for s in plan["target"]["services"] if s["name"] == "backend")
    return f"http://127.0.0.1:{next(p['published'] for p in backend['ports'] if p['target'] == 8000)}"


def test_staging_and_pr5_have_their_own_resources_and_pr5_leaves_no_trace(
        app: tuple[Path, dict[str, str], str], tmp_path: Path) -> None:
    folder, env, name = app
    staging_env = {**env, "DATA_PATH": str(tmp_path / "data" / name / "staging")}
    pr_env = {**env, "DATA_PATH": str(tmp_path / "data" / f"{name}-pr-5")}
    for args, where in ((["staging"], staging_env), (["test", "--pr", "5"], pr_env)):
        done = cli("up", *args, "--build", cwd=folder, env=where)
        assert done.returncode == 0, done.stderr

    staging, pr5 = backend_url(folder, env, "staging"), backend_url(folder, env, "test", "--pr", "5")
    for url, slug in ((staging, "staging"), (pr5, "pr-5")):
        status, health = http(f"{url}/api/health")
        assert status == 200, health
        assert health["database"] == {"ok": True, "kind": "postgresql", "reports": 0}
        assert health["storage"] == {"ok": True, "kind": "s3", "bucket": f"{name}-{slug}", "status": 200}
        assert health["cache"] == {"ok": True, "kind": "redis", "prefix": f"{name}:{slug}:"}
    assert http(f"{staging}/api/reports", {"title": "Q3 close", "amount": 1250.5})[0] == 201
    assert http(f"{pr5}/api/reports", {"title": "PR 5 test", "amount": 1})[0] == 201

    # #9.3: the preview's container holds its own S3 key, which reaches its bucket only.
    admin_s3 = S3Store(env["ENVPLANE_S3_ENDPOINT"], env["ENVPLANE_S3_ACCESS_KEY"],
                       Secret(env["ENVPLANE_S3_SECRET_KEY"]))
    admin_s3.put(f"{name}-staging", "ledger.csv", b"staging data")
    preview = preview_s3_client(f"{name}-backend-pr-5", env)
    preview.put_object(Bucket=f"{name}-pr-5", Key="draft.txt", Body=b"mine")
    assert preview.get_object(Bucket=f"{name}-pr-5", Key="draft.txt")["Body"].read() == b"mine"
    for action in (lambda: preview.get_object(Bucket=f"{name}-staging", Key="ledger.csv"),
                   lambda: preview.list_objects_v2(Bucket=f"{name}-staging"),
                   lambda: preview.delete_object(Bucket=f"{name}-staging", Key="ledger.csv")):
        with pytest.raises(ClientError) as refused:
            action()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # SeaweedFS filters ListBuckets by the key's rights rather than refusing it.
    assert [b["Name"] for b in preview.list_buckets()["Buckets"]] == [f"{name}-pr-5"]
    # verify proves it on the live host: no credential held by both, no admin one held by either
    report = json.loads(cli("verify", "--json", cwd=folder, env=env).stdout)
    assert {f"{name}/staging/staging", f"{name}/test/pr-5"} <= set(report["instances"])
    assert [v for v in report["violations"] if name in v["detail"] or name in v["subject"]] == []

    done = cli("down", "test", "--pr", "5", "--purge", cwd=folder, env=pr_env)
    assert done.returncode == 0, done.stderr
    with pytest.raises(ClientError) as gone:
        preview.list_objects_v2(Bucket=f"{name}-pr-5")
    assert gone.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert admin_s3.get(f"{name}-staging", "ledger.csv") == b"staging data"

    # staging's data is intact
    assert http(f"{staging}/api/reports")[1] == [{"id": 1, "title": "Q3 close", "amount": 1250.5}]
    assert http(f"{staging}/api/health")[0] == 200
    # and nothing of PR 5 is left anywhere
    pg = PostgresDatabases(Secret(env["ENVPLANE_POSTGRES_URL"]))
    facts = pg.observe(f"{name}_pr_5")
    assert not facts.role and not facts.database
    assert pg.observe(f"{name}_staging").database
    s3 = S3Store(env["ENVPLANE_S3_ENDPOINT"], env["ENVPLANE_S3_ACCESS_KEY"], Secret(env["ENVPLANE_S3_SECRET_KEY"]))
    assert not s3.observe(f"{name}-pr-5").exists and s3.observe(f"{name}-staging").exists
    redis = RedisUsers(Secret(env["ENVPLANE_REDIS_URL"]))
    assert not redis.observe(f"{name}:pr-5:").exists and redis.observe(f"{name}:staging:").exists
    store = open_secret_store("file", folder, env, name)
    assert store.list(f"secret/data/{name}/test-pr-5") == []
    assert store.list(f"secret/data/{name}/staging") != []
