"""Secrets at rest (#9.4): `.envplane/` is private and git-ignored; the file store's key lives
outside the project, and an old key beside the data moves there with a message.

The CLI runs as a user runs it, in a git repository; nothing here needs Docker.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from envplane.backends.secrets.file import HEADER, NONCE_BYTES
from envplane.state.db import open_store

VALUE = f"at-rest-{uuid.uuid4().hex}"
COMPOSE = "services:\n  web:\n    image: busybox:stable\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run(args: list[str], cwd: Path, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def envplane(*args: str, cwd: Path, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "envplane", *args], cwd, env, stdin)


@pytest.fixture()
def project(tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    """An app in a git repository, and a config home of its own for the keys."""
    name = f"ar{uuid.uuid4().hex[:6]}"
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "compose.yaml").write_text(COMPOSE)
    (folder / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    secrets: [API_KEY]\n")
    run(["git", "init", "-q"], folder, {})
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}
    return folder, env, name


def key_file(env: dict[str, str], name: str) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "envplane" / "keys" / f"{name}.key"


def test_git_add_all_in_the_project_takes_nothing_of_envplane(project: tuple[Path, dict[str, str], str]) -> None:
    folder, env, name = project
    assert envplane("secrets", "set", "test", "API_KEY", "-s", "web", "--pr", "1", cwd=folder, env=env,
                    stdin=VALUE).returncode == 0
    provisioned = envplane("provision", "test", "--pr", "1", cwd=folder, env=env)
    assert provisioned.returncode == 0, provisioned.stderr
    open_store(folder).close()

    run(["git", "add", "-A"], folder, {})
    staged = run(["git", "diff", "--cached", "--name-only"], folder, {}).stdout.split()
    assert staged == ["compose.yaml", "envplane.yaml"]

    private = folder / ".envplane"
    env_file = private / "instances" / "test" / "pr-1" / "web.env"
    assert (private / ".gitignore").read_text() == "*\n"
    assert mode(private) == 0o700
    for path in (private / "state.db", private / "secrets.enc", env_file):
        assert mode(path) == 0o600, path
    assert VALUE in env_file.read_text()  # the env file is the one place the value is meant to be
    assert not [p for p in folder.rglob("*.key")]
    assert mode(key_file(env, name)) == 0o600 and mode(key_file(env, name).parent) == 0o700


def test_a_key_file_beside_the_data_moves_out_of_the_project_with_a_message(
        project: tuple[Path, dict[str, str], str]) -> None:
    folder, env, name = project
    old_key = old_layout(folder)
    got = envplane("secrets", "get", "test", "API_KEY", "-s", "web", "--pr", "1", cwd=folder, env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == VALUE
    old = folder / ".envplane" / "secrets.key"
    assert f"moved the secret store's key from {old} to {key_file(env, name)}" in got.stderr
    assert not old.exists()
    assert key_file(env, name).read_bytes() == old_key and mode(key_file(env, name)) == 0o600
    again = envplane("secrets", "get", "test", "API_KEY", "-s", "web", "--pr", "1", cwd=folder, env=env)
    assert again.stdout == VALUE and "moved" not in again.stderr


def test_two_different_keys_for_one_app_are_refused_and_neither_moves(
        project: tuple[Path, dict[str, str], str]) -> None:
    folder, env, name = project
    old_key = old_layout(folder)
    other = base64.b64encode(os.urandom(32)) + b"\n"
    key_file(env, name).parent.mkdir(parents=True)
    key_file(env, name).write_bytes(other)
    key_file(env, name).chmod(0o600)
    got = envplane("secrets", "get", "test", "API_KEY", "-s", "web", "--pr", "1", cwd=folder, env=env)
    assert got.returncode == 1
    old = folder / ".envplane" / "secrets.key"
    assert f"two keys for app {name}: {old} (inside the project) and {key_file(env, name)}" in got.stderr
    assert old.read_bytes() == old_key and key_file(env, name).read_bytes() == other
    assert VALUE not in got.stdout + got.stderr


def test_a_key_in_the_environment_writes_no_key_file(project: tuple[Path, dict[str, str], str]) -> None:
    folder, env, name = project
    key = base64.b64encode(os.urandom(32)).decode()
    with_key = {**env, "ENVPLANE_SECRET_KEY": key}
    assert envplane("secrets", "set", "test", "API_KEY", "-s", "web", "--pr", "1", cwd=folder, env=with_key,
                    stdin=VALUE).returncode == 0
    assert not key_file(env, name).exists() and not [p for p in folder.rglob("*.key")]
    got = envplane("secrets", "get", "test", "API_KEY", "-s", "web", "--pr", "1", cwd=folder, env=with_key)
    assert got.stdout == VALUE


def test_a_folder_an_older_envplane_left_open_is_closed(project: tuple[Path, dict[str, str], str]) -> None:
    folder = project[0]
    private = folder / ".envplane"
    private.mkdir(mode=0o755)
    private.chmod(0o755)
    (private / "state.db").touch(mode=0o644)
    (private / "state.db").chmod(0o644)
    open_store(folder).close()
    assert mode(private) == 0o700 and mode(private / "state.db") == 0o600
    assert (private / ".gitignore").read_text() == "*\n"


def old_layout(folder: Path) -> bytes:
    """What envplane wrote before the key moved out: secrets.key beside secrets.enc."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    raw = os.urandom(32)
    key = base64.b64encode(raw) + b"\n"
    document = f'{{"{folder_app(folder)}/test-pr-1/web": {{"API_KEY": "{VALUE}"}}}}'.encode()
    nonce = os.urandom(NONCE_BYTES)
    private = folder / ".envplane"
    private.mkdir(mode=0o755)
    (private / "secrets.key").write_bytes(key)
    (private / "secrets.key").chmod(0o600)
    (private / "secrets.enc").write_bytes(HEADER + nonce + AESGCM(raw).encrypt(nonce, document, HEADER))
    return key


def folder_app(folder: Path) -> str:
    return (folder / "envplane.yaml").read_text().split("app: ")[1].split()[0]
