"""The platform layer: `envplane platform up staging` runs PostgreSQL, Redis and S3 as an
isolated Compose project (platform-postgres-staging, data under its own data path), and an
app whose env names no server is provisioned on it, with the same machinery as any app.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane.backends.cache import acl
from envplane.backends.cache.redis import RedisUsers
from envplane.backends.objects.s3_identity import S3Identities
from envplane.platform import layer
from envplane.secret import Secret
from tests.support import cli, docker_engine, free_port_block, need, remove_example_images

ROOT = Path(__file__).resolve().parents[2]
NO_SERVERS = {k: "" for k in ("ENVPLANE_POSTGRES_URL", "ENVPLANE_S3_ENDPOINT", "ENVPLANE_S3_ACCESS_KEY",
                              "ENVPLANE_S3_SECRET_KEY", "ENVPLANE_REDIS_URL")}


@pytest.fixture()
def home(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], check=True, capture_output=True)
    env = {**NO_SERVERS, "ENVPLANE_HOME": str(tmp_path / "home"), "ENVPLANE_SECRETS": "file"}
    yield tmp_path, env
    cli("platform", "down", "dr", "--purge", "--yes", cwd=tmp_path, env=env)


def test_an_app_without_servers_is_provisioned_on_its_env_platform(home: tuple[Path, dict[str, str]]) -> None:
    tmp_path, env = home
    # dr: a host group of its own, so this test's platform never meets a real staging one
    up = cli("platform", "up", "dr", "--json", cwd=tmp_path,
             env={**env, "DATA_PATH": str(tmp_path / "pf" / "dr-platform")})
    assert up.returncode == 0, up.stderr
    names = subprocess.run(["docker", "ps", "--filter", "label=envplane.app=platform", "--filter",
                            "label=envplane.env=dr", "--format", "{{.Names}}"],
                           capture_output=True, text=True).stdout.split()
    assert sorted(names) == ["platform-postgres-dr", "platform-redis-dr", "platform-s3-dr"]

    folder = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "finance-report", folder, ignore=shutil.ignore_patterns(".envplane"))
    name = f"pl{uuid.uuid4().hex[:6]}"
    base = free_port_block(4)
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("app: finance-report", f"app: {name}")
                    .replace("prefix: report", f"prefix: {name}")
                    + f"environments:\n  dr:\n    ports:\n      backend: {{8000: {base}}}\n"
                      f"      frontend: {{8080: {base + 1}}}\n")
    app_env = {**env, "DATA_PATH": str(tmp_path / "appdata" / f"{name}-dr"), "IMAGE_TAG": name}
    try:
        done = cli("up", "dr", "--build", cwd=folder, env=app_env)
        assert done.returncode == 0, done.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{base}/api/health", timeout=10) as response:
            health = json.loads(response.read())
        assert health["database"]["kind"] == "postgresql" and health["database"]["ok"]
        assert health["storage"] == {"ok": True, "kind": "s3", "bucket": f"{name}-dr", "status": 200}
        assert health["cache"] == {"ok": True, "kind": "redis", "prefix": f"{name}:dr:"}
        # #9.17: the admin ports listen on a private address, never on every interface
        published = subprocess.run(["docker", "port", "platform-postgres-dr"], capture_output=True,
                                   text=True).stdout
        assert published.strip() and "0.0.0.0" not in published and "[::]" not in published
        # #9.17: the platform keeps each instance's Redis ACL user and S3 user across a restart
        admin = layer.servers_of("dr", env)
        assert admin is not None
        redis_admin = admin["redis"]
        assert isinstance(redis_admin, Secret)
        before = RedisUsers(redis_admin).observe(f"{name}:dr:")
        subprocess.run(["docker", "restart", "platform-redis-dr", "platform-s3-dr"], check=True,
                       capture_output=True)
        assert layer.wait_ready("dr", env, 60)  # answers again, with its admin credentials
        after = RedisUsers(redis_admin).observe(f"{name}:dr:")
        assert after.exists and acl.differences(after, before.password_hashes[0]) == []
        s3_secret = admin["s3_secret_key"]
        assert isinstance(s3_secret, Secret)
        users = S3Identities(str(admin["s3_endpoint"]), str(admin["s3_access_key"]), s3_secret)
        assert users.observe(f"{name}-dr").exists
        with urllib.request.urlopen(f"http://127.0.0.1:{base}/api/health", timeout=10) as response:
            after_restart = json.loads(response.read())  # the app reconnects with its own user and key
        assert after_restart["cache"]["ok"] and after_restart["storage"]["ok"], after_restart
    finally:
        purged = cli("down", "dr", "--purge", "--yes", cwd=folder, env=app_env)
        remove_example_images(name)
    assert purged.returncode == 0, purged.stderr
    gone = cli("platform", "down", "dr", "--purge", "--yes", cwd=tmp_path, env=env)
    assert gone.returncode == 0, gone.stderr
    assert subprocess.run(["docker", "ps", "-a", "--filter", "label=envplane.app=platform", "--filter",
                           "label=envplane.env=dr", "-q"], capture_output=True, text=True).stdout == ""
    assert not (tmp_path / "pf" / "dr-platform").exists()


def test_a_refused_platform_up_changes_nothing(tmp_path: Path) -> None:
    """#10.1: the checks come first: a port in use (or a clash) refuses before any secret."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    env = {**NO_SERVERS, "ENVPLANE_HOME": str(tmp_path / "home")}  # docker's data: under the home
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 25462))  # the docker env platform's PostgreSQL port
        holder.listen()
        refused = cli("platform", "up", "docker", cwd=tmp_path, env=env)
    assert refused.returncode == 1, refused.stderr
    assert "host port 25462/tcp of postgres is in use" in refused.stderr
    assert "generated" not in refused.stderr
    assert not (tmp_path / "home" / "platform" / ".envplane" / "secrets.enc").exists()
    local = cli("platform", "up", "local", cwd=tmp_path, env=env)
    assert local.returncode == 2 and "env local runs services as local processes: it has no platform" in local.stderr
    assert not (tmp_path / "home" / "platform" / ".envplane" / "secrets.enc").exists()


@pytest.fixture()
def three(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], check=True, capture_output=True)
    env = {**NO_SERVERS, "ENVPLANE_HOME": str(tmp_path / "home")}
    yield tmp_path, env
    for name in ("docker", "staging", "production"):
        cli("platform", "down", name, "--purge", "--yes", cwd=tmp_path, env=env)  # at its recorded path


def test_docker_staging_and_production_platforms_run_side_by_side(three: tuple[Path, dict[str, str]]) -> None:
    """#10.1: `envplane platform up ENV` works for each env of the ladder on one machine."""
    tmp_path, env = three
    for name in ("docker", "staging", "production"):
        up = cli("platform", "up", name, cwd=tmp_path, env={**env, "DATA_PATH": str(tmp_path / name / "platform")})
        assert up.returncode == 0, up.stderr
        assert "answering: PostgreSQL (a SQL query), Redis (an ACL read, with auth), S3 (HeadBucket, signed)" \
            in up.stderr
    running = subprocess.run(["docker", "ps", "--filter", "label=envplane.app=platform", "--format",
                              "{{.Names}} {{.Status}}"], capture_output=True, text=True).stdout.splitlines()
    for name in ("platform-postgres", "platform-postgres-staging", "platform-postgres-docker",
                 "platform-s3", "platform-s3-staging", "platform-s3-docker"):
        assert any(line.split()[0] == name and " Up " in f" {line} " for line in running), running


def test_without_servers_or_platform_up_names_both_ways_out(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: busybox:stable}\n")
    (tmp_path / "envplane.yaml").write_text(
        "app: nosrv\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web: {uses: [postgres]}\nresources:\n  postgres: {}\n")
    env = {**NO_SERVERS, "ENVPLANE_HOME": str(tmp_path / "home"), "DATA_PATH": str(tmp_path / "d" / "nosrv-staging")}
    done = cli("provision", "staging", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "env staging needs PostgreSQL, and none is configured" in done.stderr
    assert "envplane platform up staging" in done.stderr


def test_platform_up_of_several_envs_checks_each_before_any_starts(tmp_path: Path) -> None:
    """#10.1: the tour gets every env's servers in one command; a refusal of one env comes
    before anything of the others is made."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    # No DATA_PATH: one value cannot be the data path of two envs' platforms (#9.2 refuses it).
    env = {**NO_SERVERS, "ENVPLANE_HOME": str(tmp_path / "home")}
    refused = cli("platform", "up", "dr", "local", cwd=tmp_path, env=env)
    assert refused.returncode == 2, refused.stderr
    assert "env local runs services as local processes: it has no platform" in refused.stderr
    assert "generated" not in refused.stderr
    assert not (tmp_path / "home" / "platform" / ".envplane" / "secrets.enc").exists()  # dr's neither


def test_platform_down_takes_several_envs_and_checks_each_before_any_stops(tmp_path: Path) -> None:
    """#10: the tour's clean-up stops every env's servers in one command, as `platform up`
    started them; an env without a platform is refused before any other stops."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    # No DATA_PATH: one value cannot be the data path of two envs' platforms (#9.2 refuses it).
    env = {**NO_SERVERS, "ENVPLANE_HOME": str(tmp_path / "home")}
    refused = cli("platform", "down", "dr", "local", cwd=tmp_path, env=env)
    assert refused.returncode == 2, refused.stderr
    assert "env local runs services as local processes: it has no platform" in refused.stderr
    assert "platform dr" not in refused.stdout  # dr, named first, was not looked at
    done = cli("platform", "down", "dr", "ci", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    # neither runs under this test's ENVPLANE_HOME: each says so, and the second is not skipped
    assert "platform dr is not running: nothing to stop" in done.stdout
    assert "platform ci is not running: nothing to stop" in done.stdout
