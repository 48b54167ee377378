"""up/down provision an instance's own database and bucket on real servers, carry the
connection to its services in a 0600 env file, and leave no secret value anywhere else.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envplane.backends.cache.redis import RedisUsers
from envplane.backends.database.postgres import PostgresDatabases
from envplane.backends.objects.s3 import S3Store
from envplane.backends.objects.s3_identity import S3Identities
from envplane.backends.secrets import open_secret_store
from envplane.compose.dotenv import read_dotenv
from envplane.errors import BackendError
from envplane.secret import Secret
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need


def servers() -> dict[str, str]:
    wanted = {"ENVPLANE_POSTGRES_URL": "ENVPLANE_TEST_POSTGRES_URL",
              "ENVPLANE_S3_ENDPOINT": "ENVPLANE_TEST_S3_ENDPOINT",
              "ENVPLANE_S3_ACCESS_KEY": "ENVPLANE_TEST_S3_ACCESS_KEY",
              "ENVPLANE_S3_SECRET_KEY": "ENVPLANE_TEST_S3_SECRET_KEY",
              "ENVPLANE_REDIS_URL": "ENVPLANE_TEST_REDIS_URL"}
    found = {ours: os.environ.get(theirs, "") for ours, theirs in wanted.items()}
    need("PostgreSQL, an S3 server and Redis", all(found.values()),
         "run scripts/services/postgres.sh, seaweedfs.sh and redis.sh and eval their export lines")
    return found


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    env = {**servers(), "DATA_PATH": "", "ENVPLANE_SECRET_KEY": "", "ENVPLANE_SECRETS": "file"}
    name = f"pv{uuid.uuid4().hex[:6]}"
    busybox_app(tmp_path, name, free_port_block())
    spec = tmp_path / "envplane.yaml"
    spec.write_text(spec.read_text().replace("    health: /health.txt\n",
                                             "    health: /health.txt\n    uses: [postgres, s3, redis]\n")
                    + "resources:\n  postgres: {}\n  s3: {}\n  redis: {}\n")
    yield tmp_path, env
    cli("down", "test", "--pr", "5", "--purge", cwd=tmp_path, env=env)


def everything_written(folder: Path, outputs: list[str]) -> str:
    """Every file envplane wrote under the project - all of .envplane/: the state store's
    bytes (audit log, steps, its -wal), the encrypted store, rendered files - and everything
    it printed, except the env files whose purpose is to hold the values."""
    texts = list(outputs)
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.endswith(".env"):
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


def test_pr_instance_gets_its_own_database_and_bucket_and_no_value_leaks(
        app: tuple[Path, dict[str, str]]) -> None:
    folder, env = app
    name = folder.joinpath("envplane.yaml").read_text().split("app: ")[1].split()[0]
    database = f"{name}_pr_5"
    plan = cli("plan", "test", "--pr", "5", "--json", cwd=folder, env=env)
    kinds = [s["kind"] for s in json.loads(plan.stdout)["steps"]]
    assert [
        k for k in kinds if k in ("secrets", "database", "bucket", "s3key", "cache", "envfile")
    ] == ["secrets", "database", "bucket", "s3key", "cache", "envfile"]
    up = cli("up", "test", "--pr", "5", cwd=folder, env=env)
    assert up.returncode == 0, up.stderr

    password = open_secret_store("file", folder, env, name).read(f"secret/data/{name}/test-pr-5/postgres")["password"]
    admin = PostgresDatabases(Secret(env["ENVPLANE_POSTGRES_URL"]))
    facts = admin.observe(database)
    assert facts.role and facts.database
    assert admin.can_connect(database, password)
    s3 = S3Store(env["ENVPLANE_S3_ENDPOINT"], env["ENVPLANE_S3_ACCESS_KEY"],
                 Secret(env["ENVPLANE_S3_SECRET_KEY"]))
    assert s3.observe(f"{name}-pr-5").exists

    redis_users = RedisUsers(Secret(env["ENVPLANE_REDIS_URL"]))
    assert redis_users.observe(f"{name}:pr-5:").exists

    env_file = folder / ".envplane" / "instances" / "test" / "pr-5" / "web.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    lines = read_dotenv(env_file)  # as Compose reads it
    assert lines["S3_BUCKET"] == f"{name}-pr-5"
    assert lines["REDIS_PREFIX"] == f"{name}:pr-5:"
    assert lines["REDIS_URL"].startswith("redis://")
    # #9.3: the container holds the instance's own S3 key, never the admin key.
    assert lines["S3_ACCESS_KEY_ID"] != env["ENVPLANE_S3_ACCESS_KEY"]
    assert env["ENVPLANE_S3_SECRET_KEY"] not in env_file.read_text()
    stored = open_secret_store("file", folder, env, name).read(f"secret/data/{name}/test-pr-5/s3")
    assert lines["S3_ACCESS_KEY_ID"] == stored["access_key_id"].reveal()
    assert lines["S3_SECRET_ACCESS_KEY"] == stored["secret_access_key"].reveal()
    instance_key = S3Store(env["ENVPLANE_S3_ENDPOINT"], lines["S3_ACCESS_KEY_ID"],
                           Secret(lines["S3_SECRET_ACCESS_KEY"]))
    instance_key.put(f"{name}-pr-5", "hello.txt", b"hi")
    with pytest.raises(BackendError, match="AccessDenied"):
        instance_key.keys(f"{name}-pr-6")  # another instance's bucket, refused
    with psycopg.connect(lines["DATABASE_URL"].replace("host.docker.internal", "127.0.0.1")) as conn:
        assert conn.execute("select current_user, current_database()").fetchone() == (database, database)
    inside = subprocess.run(["docker", "exec", f"{name}-web-pr-5", "env"], capture_output=True, text=True)
    assert f"S3_BUCKET={name}-pr-5" in inside.stdout  # the container got the variables

    outputs = [up.stdout, up.stderr,
               cli("audit", "log", "--json", cwd=folder, env=env).stdout,
               cli("render", "test", "--pr", "5", cwd=folder, env=env).stdout,
               cli("plan", "test", "--pr", "5", "--json", cwd=folder, env=env).stdout]
    written = everything_written(folder, outputs)
    store = open_secret_store("file", folder, env, name)
    redis_password = store.read(f"secret/data/{name}/test-pr-5/redis")["password"].reveal()
    for value in (password.reveal(), redis_password, env["ENVPLANE_S3_SECRET_KEY"], lines["DATABASE_URL"],
                  lines["REDIS_URL"]):
        assert value not in written
    assert not list(folder.rglob("*.key"))  # the store's key lives outside the project

    down = cli("down", "test", "--pr", "5", "--purge", cwd=folder, env=env)
    assert down.returncode == 0, down.stderr
    facts = admin.observe(database)
    assert not facts.role and not facts.database
    assert not s3.observe(f"{name}-pr-5").exists
    assert not redis_users.observe(f"{name}:pr-5:").exists
    assert not S3Identities(env["ENVPLANE_S3_ENDPOINT"], env["ENVPLANE_S3_ACCESS_KEY"],
                            Secret(env["ENVPLANE_S3_SECRET_KEY"])).observe(f"{name}-pr-5").exists
    with pytest.raises(BackendError, match="InvalidAccessKeyId"):
        instance_key.keys(f"{name}-pr-5")  # the purged instance's key no longer works
    assert open_secret_store("file", folder, env, name).list(f"secret/data/{name}/test-pr-5") == []
    assert password.reveal() not in everything_written(folder, [down.stdout, down.stderr])


def test_database_server_down_at_up_is_a_clear_error_and_the_rerun_converges(
        app: tuple[Path, dict[str, str]]) -> None:
    folder, env = app
    name = folder.joinpath("envplane.yaml").read_text().split("app: ")[1].split()[0]
    down = {**env, "ENVPLANE_POSTGRES_URL": "postgresql://envplane:envplane@127.0.0.1:1/envplane_test"}
    failed = cli("up", "test", "--pr", "5", cwd=folder, env=down)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    assert "envplane:envplane" not in failed.stderr  # the admin password is not shown
    assert "PostgreSQL" in failed.stderr or "postgres" in failed.stderr.lower()
    # Nothing half-created goes unrecorded: the failed deployment and its audit row are there,
    # and no container was started.
    rows = json.loads(cli("audit", "log", "--json", cwd=folder, env=env).stdout)
    assert (rows[-1]["action"], rows[-1]["instance"], rows[-1]["outcome"]) == ("up", "pr-5", "failed")
    assert subprocess.run(["docker", "ps", "-q", "--filter", f"label=envplane.app={name}"],
                          capture_output=True, text=True).stdout == ""
    again = cli("up", "test", "--pr", "5", cwd=folder, env=env)
    assert again.returncode == 0, again.stderr
    admin = PostgresDatabases(Secret(env["ENVPLANE_POSTGRES_URL"]))
    assert admin.observe(f"{name}_pr_5").database


def test_plan_shows_what_exists_and_writes_nothing(app: tuple[Path, dict[str, str]]) -> None:
    folder, env = app
    name = folder.joinpath("envplane.yaml").read_text().split("app: ")[1].split()[0]

    def actions() -> dict[str, str]:
        steps = json.loads(cli("plan", "test", "--pr", "5", "--json", cwd=folder, env=env).stdout)["steps"]
        return {s["kind"]: s["action"] for s in steps
                if s["kind"] in ("secrets", "database", "bucket", "s3key", "cache")}

    before = {p for p in folder.rglob("*")}
    assert actions() == {"secrets": "create", "database": "create", "bucket": "create", "s3key": "create",
                         "cache": "create"}
    assert {p for p in folder.rglob("*")} == before  # plan created no key file, no state
    assert cli("provision", "test", "--pr", "5", cwd=folder, env=env).returncode == 0
    assert actions() == {"secrets": "noop", "database": "noop", "bucket": "noop", "s3key": "noop",
                         "cache": "noop"}
    text = cli("plan", "test", "--pr", "5", cwd=folder, env=env).stdout
    assert f"reuse bucket {name}-pr-5" in text


def test_the_spec_s_seed_sql_runs_once_per_database(app: tuple[Path, dict[str, str]]) -> None:
    """Seed 003's minimal seed: one bot_config row and a model_provider row, applied once."""
    folder, env = app
    (folder / "seed.sql").write_text(
        "CREATE TABLE bot_config (bot_name text, init_type text, is_active boolean);\n"
        "INSERT INTO bot_config VALUES ('test-bot', 'websocket', true);\n"
        "CREATE TABLE model_provider (name text, client_type text);\n"
        "INSERT INTO model_provider VALUES ('openai', 'openai');\n")
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("  postgres: {}\n", "  postgres: {seed: seed.sql}\n"))
    for _ in range(2):  # the second up must not apply it again
        done = cli("up", "test", "--pr", "5", cwd=folder, env=env)
        assert done.returncode == 0, done.stderr
    env_file = folder / ".envplane" / "instances" / "test" / "pr-5" / "web.env"
    url = read_dotenv(env_file)["DATABASE_URL"]
    with psycopg.connect(url.replace("host.docker.internal", "127.0.0.1")) as conn:
        assert conn.execute("select bot_name, init_type from bot_config").fetchall() == [("test-bot", "websocket")]
        assert conn.execute("select count(*) from model_provider").fetchone() == (1,)
