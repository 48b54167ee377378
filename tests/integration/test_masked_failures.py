"""A failing hook's output is masked before it reaches anyone (#9.15).

The hook echoes its DATABASE_URL (with the instance's generated password) and a user
secret, then fails: the CLI's error, its `--json` error, the audit log, the state store and
every file envplane wrote show `***`, never a value. Real PostgreSQL, Docker and Compose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane.backends.secrets import open_secret_store
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need

USER_SECRET = f"user-secret-{uuid.uuid4().hex}"
HOOK = """\
hooks:
  pre_deploy: {service: web, command: 'echo "url=$DATABASE_URL key=$API_KEY" >&2; exit 3'}
"""


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    postgres = os.environ.get("ENVPLANE_TEST_POSTGRES_URL", "")
    need("PostgreSQL", bool(postgres), "run scripts/services/postgres.sh and eval its export line")
    ensure_busybox_image()
    name = f"mk{uuid.uuid4().hex[:6]}"
    busybox_app(tmp_path, name, free_port_block())
    spec = tmp_path / "envplane.yaml"
    spec.write_text(spec.read_text().replace(
        "    health: /health.txt\n", "    health: /health.txt\n    uses: [postgres]\n    secrets: [API_KEY]\n")
        + "resources:\n  postgres: {}\n" + HOOK)
    env = {"ENVPLANE_POSTGRES_URL": postgres, "DATA_PATH": "", "ENVPLANE_SECRETS": "file",
           "ENVPLANE_SECRET_KEY": ""}
    stored = subprocess.run([sys.executable, "-m", "envplane", "secrets", "set", "test", "API_KEY", "-s", "web",
                             "--pr", "6"], cwd=tmp_path, input=USER_SECRET, capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=120)
    assert stored.returncode == 0, stored.stderr
    yield tmp_path, env, name
    cli("down", "test", "--pr", "6", "--purge", cwd=tmp_path, env=env)


def written(folder: Path) -> str:
    """Every file envplane wrote, the state store's bytes included, except the two whose
    purpose is to hold values: the encrypted store and the env files containers read."""
    texts = []
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix not in (".env", ".enc"):
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


def test_a_failing_hook_that_prints_its_secrets_shows_only_the_mask(
        app: tuple[Path, dict[str, str], str]) -> None:
    folder, env, name = app
    up = cli("up", "test", "--pr", "6", cwd=folder, env=env)
    assert up.returncode == 1
    password = open_secret_store("file", folder, env, name).read(
        f"secret/data/{name}/test-pr-6/postgres")["password"].reveal()
    values = [password, USER_SECRET]

    assert "url=*** key=***" in up.stderr, up.stderr
    as_json = cli("up", "test", "--pr", "6", "--json", cwd=folder, env=env)
    assert as_json.returncode == 1
    error = json.loads(as_json.stdout)["error"]
    assert "url=*** key=***" in error["problems"][0]["message"]
    audit = cli("audit", "log", "--json", cwd=folder, env=env)
    assert audit.returncode == 0, audit.stderr
    failed = [row for row in json.loads(audit.stdout) if row["outcome"] == "failed"]
    assert len(failed) == 2 and all("url=*** key=***" in row["detail"]["error"] for row in failed)

    seen = "\n".join([up.stdout, up.stderr, as_json.stdout, as_json.stderr, audit.stdout, audit.stderr,
                      written(folder)])
    for value in values:
        assert value not in seen
