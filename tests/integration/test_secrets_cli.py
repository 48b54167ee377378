"""User secrets from the CLI to the container, through stdin and a 0600 env file only."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need

VALUE = f"s3cr3t-{uuid.uuid4().hex}"


def cli_in(stdin: str, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, "-m", "envplane", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **env})


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"sc{uuid.uuid4().hex[:6]}"
    busybox_app(tmp_path, name, free_port_block())
    spec = tmp_path / "envplane.yaml"
    spec.write_text(spec.read_text().replace("    health: /health.txt\n",
                                             "    health: /health.txt\n    secrets: [API_KEY]\n"))
    env = {"DATA_PATH": "", "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}
    yield tmp_path, env
    cli("down", "test", "--pr", "3", "--purge", cwd=tmp_path, env=env)


def test_a_missing_secret_stops_up_with_the_command_to_set_it(app: tuple[Path, dict[str, str]]) -> None:
    folder, env = app
    done = cli("up", "test", "--pr", "3", cwd=folder, env=env)
    assert done.returncode == 1
    assert "secret API_KEY of service web is not set for test pr-3" in done.stderr
    assert "envplane secrets set test API_KEY --service web --pr 3" in done.stderr


def test_set_list_get_rm_and_the_value_reaches_only_the_container(app: tuple[Path, dict[str, str]]) -> None:
    folder, env = app
    name = folder.joinpath("envplane.yaml").read_text().split("app: ")[1].split()[0]
    stored = cli_in(VALUE + "\n", "secrets", "set", "test", "API_KEY", "--service", "web", "--pr", "3",
                    cwd=folder, env=env)
    assert stored.returncode == 0, stored.stderr
    listed = json.loads(cli("secrets", "list", "test", "--pr", "3", "--json", cwd=folder, env=env).stdout)
    assert listed == [{"path": f"secret/data/{name}/test-pr-3/web", "keys": ["API_KEY"]}]
    got = cli("secrets", "get", "test", "API_KEY", "--service", "web", "--pr", "3", cwd=folder, env=env)
    assert got.stdout == VALUE

    up = cli("up", "test", "--pr", "3", cwd=folder, env=env)
    assert up.returncode == 0, up.stderr
    inside = subprocess.run(["docker", "exec", f"{name}-web-pr-3", "env"], capture_output=True, text=True)
    assert f"API_KEY={VALUE}" in inside.stdout
    inspect = subprocess.run(["docker", "inspect", f"{name}-web-pr-3", "--format", "{{json .Config.Cmd}}"],
                             capture_output=True, text=True).stdout
    assert VALUE not in inspect  # never on a command line
    rendered = cli("render", "test", "--pr", "3", cwd=folder, env=env).stdout
    assert VALUE not in rendered and "web.env" in rendered
    for path in folder.rglob("*"):
        if path.is_file() and path.name != "web.env":
            assert VALUE.encode() not in path.read_bytes(), path

    assert cli("secrets", "rm", "test", "API_KEY", "--service", "web", "--pr", "3",
               cwd=folder, env=env).returncode == 0
    assert json.loads(cli("secrets", "list", "test", "--pr", "3", "--json", cwd=folder, env=env).stdout) == []


def test_provision_runs_only_the_resource_steps(app: tuple[Path, dict[str, str]]) -> None:
    folder, env = app
    cli_in(VALUE, "secrets", "set", "test", "API_KEY", "-s", "web", "--pr", "3", cwd=folder, env=env)
    done = cli("provision", "test", "--pr", "3", "--json", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert (folder / ".envplane" / "instances" / "test" / "pr-3" / "web.env").exists()
    name = folder.joinpath("envplane.yaml").read_text().split("app: ")[1].split()[0]
    assert subprocess.run(["docker", "ps", "-q", "--filter", f"label=envplane.app={name}"],
                          capture_output=True, text=True).stdout == ""  # nothing started


def test_rotate_key_keeps_the_values_and_replaces_the_key(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: busybox}\n")
    (tmp_path / "envplane.yaml").write_text("app: rk\ndomain: example.com\ncompose: compose.yaml\n")
    env = {"ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": "", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    assert cli_in(VALUE, "secrets", "set", "staging", "TOKEN", "-s", "web", cwd=tmp_path, env=env).returncode == 0
    key_file = tmp_path / "config" / "envplane" / "keys" / "rk.key"
    old_key = key_file.read_bytes()
    done = cli("secrets", "rotate-key", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert key_file.read_bytes() != old_key
    got = cli("secrets", "get", "staging", "TOKEN", "-s", "web", cwd=tmp_path, env=env)
    assert got.stdout == VALUE
    key_file.write_bytes(old_key)  # the old key no longer opens the store
    refused = cli("secrets", "get", "staging", "TOKEN", "-s", "web", cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "cannot decrypt" in refused.stderr and VALUE not in refused.stderr
