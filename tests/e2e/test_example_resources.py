"""Issue 4's acceptance test: staging and PR 5 of the example app come up with their own
database, bucket, Redis user and secrets; the app's /api/health reports all three
reachable from inside its container; purging PR 5 leaves staging's data intact and no
trace of PR 5 in PostgreSQL, S3, Redis or the secret store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane.backends.cache.redis import RedisUsers
from envplane.backends.database.postgres import PostgresDatabases
from envplane.backends.objects.s3 import S3Store
from envplane.backends.secrets import open_secret_store
from envplane.secret import Secret
from tests.support import cli, docker_engine, free_port_block, need, remove_example_images

ROOT = Path(__file__).resolve().parents[2]
SERVERS = {"ENVPLANE_POSTGRES_URL": "ENVPLANE_TEST_POSTGRES_URL",
           "ENVPLANE_S3_ENDPOINT": "ENVPLANE_TEST_S3_ENDPOINT",
           "ENVPLANE_S3_ACCESS_KEY": "ENVPLANE_TEST_S3_ACCESS_KEY",
           "ENVPLANE_S3_SECRET_KEY": "ENVPLANE_TEST_S3_SECRET_KEY",
           "ENVPLANE_REDIS_URL": "ENVPLANE_TEST_REDIS_URL"}


def http(url: str, body: dict[str, object] | None = None) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    env = {ours: os.environ.get(theirs, "") for ours, theirs in SERVERS.items()}
    need("PostgreSQL, SeaweedFS and Redis", all(env.values()), "run scripts/services/*.sh")
    subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], check=True, capture_output=True)
    folder = tmp_path / "finance-report"
    shutil.copytree(ROOT / "examples" / "finance-report", folder, ignore=shutil.ignore_patterns(".envplane"))
    name = f"rs{uuid.uuid4().hex[:6]}"
    base = free_port_block(60)
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("app: finance-report", f"app: {name}")
                    .replace("prefix: report", f"prefix: {name}") + (
        "environments:\n"
        f"  test:\n    port_base: {base}\n"
        f"  staging:\n    ports:\n      backend: {{8000: {base + 55}}}\n      frontend: {{8080: {base + 56}}}\n"))
    env.update({"ENVPLANE_HOME": str(tmp_path / "home"), "IMAGE_TAG": name, "ENVPLANE_SECRETS": "file"})
    yield folder, env, name
    for args in (["down", "test", "--pr", "5", "--purge"], ["down", "staging", "--purge"]):
        cli(*args, cwd=folder, env={**env, "DATA_PATH": str(tmp_path / "data" / args[1])})
    remove_example_images(name)


def backend_url(folder: Path, env: dict[str, str], *args: str) -> str:
    plan = json.loads(cli("plan", *args, "--json", cwd=folder, env=env).stdout)
    backend = next(s for s in plan["target"]["services"] if s["name"] == "backend")
    return f"http://127.0.0.1:{next(p['published'] for p in backend['ports'] if p['target'] == 8000)}"


def test_staging_and_pr5_have_their_own_resources_and_pr5_leaves_no_trace(
        app: tuple[Path, dict[str, str], str], tmp_path: Path) -> None:
    folder, env, name = app
    staging_env = {**env, "DATA_PATH": str(tmp_path / "data" / "staging")}
    pr_env = {**env, "DATA_PATH": str(tmp_path / "data" / "test")}
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

    done = cli("down", "test", "--pr", "5", "--purge", cwd=folder, env=pr_env)
    assert done.returncode == 0, done.stderr

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
    store = open_secret_store("file", folder, env)
    assert store.list(f"secret/data/{name}/test-pr-5") == []
    assert store.list(f"secret/data/{name}/staging") != []
