"""The platform layer: `envplane platform up staging` runs PostgreSQL, Redis and S3 as an
isolated Compose project (platform-postgres-staging, data under its own data path), and an
app whose env names no server is provisioned on it, with the same machinery as any app.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    cli("platform", "down", "dr", "--purge", cwd=tmp_path, env={**env, "DATA_PATH": str(tmp_path / "pf")})


def test_an_app_without_servers_is_provisioned_on_its_env_platform(home: tuple[Path, dict[str, str]]) -> None:
    tmp_path, env = home
    # dr: a host group of its own, so this test's platform never meets a real staging one
    up = cli("platform", "up", "dr", "--json", cwd=tmp_path, env={**env, "DATA_PATH": str(tmp_path / "pf")})
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
    app_env = {**env, "DATA_PATH": str(tmp_path / "appdata"), "IMAGE_TAG": name}
    try:
        done = cli("up", "dr", "--build", cwd=folder, env=app_env)
        assert done.returncode == 0, done.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{base}/api/health", timeout=10) as response:
            health = json.loads(response.read())
        assert health["database"]["kind"] == "postgresql" and health["database"]["ok"]
        assert health["storage"] == {"ok": True, "kind": "s3", "bucket": f"{name}-dr", "status": 200}
        assert health["cache"] == {"ok": True, "kind": "redis", "prefix": f"{name}:dr:"}
    finally:
        purged = cli("down", "dr", "--purge", cwd=folder, env=app_env)
        remove_example_images(name)
    assert purged.returncode == 0, purged.stderr
    gone = cli("platform", "down", "dr", "--purge", cwd=tmp_path, env={**env, "DATA_PATH": str(tmp_path / "pf")})
    assert gone.returncode == 0, gone.stderr
    assert subprocess.run(["docker", "ps", "-a", "--filter", "label=envplane.app=platform", "--filter",
                           "label=envplane.env=dr", "-q"], capture_output=True, text=True).stdout == ""
    assert not (tmp_path / "pf").exists()


def test_without_servers_or_platform_up_names_both_ways_out(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: busybox:stable}\n")
    (tmp_path / "envplane.yaml").write_text(
        "app: nosrv\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web: {uses: [postgres]}\nresources:\n  postgres: {}\n")
    env = {**NO_SERVERS, "ENVPLANE_HOME": str(tmp_path / "home"), "DATA_PATH": str(tmp_path / "d")}
    done = cli("provision", "staging", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "env staging needs PostgreSQL, and none is configured" in done.stderr
    assert "envplane platform up staging" in done.stderr
