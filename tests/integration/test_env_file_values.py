"""A secret reaches the container exactly (#9.8): through `secrets set`, the env file, a real
`docker compose up` and a busybox container's `env -0`, byte for byte.

The env file quotes every value (compose.dotenv.env_file_text); Compose's own parser reads
it back. A value no environment variable can carry (NUL) is refused by name, never split.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    busybox_app,
    cli,
    compose_v2,
    docker_engine,
    ensure_busybox_image,
    free_port_block,
    need,
)

HOSTILE = {
    "BCRYPT": 'p$2b$12$ab #c "q"',  # arrived as `p$2b$12` when env files were unquoted
    "HASH": "a #b",
    "BRACED": "${HOME} and ${NOPE:-default} and ${X:?err}",
    "DOLLARS": "$$ $ $1 \\$ $",
    "QUOTES": """it's "both" ''' \"\"\" """,
    "SPACES": "  leading and trailing  ",
    "BACKSLASHES": "C:\\path\\n \\\\ \\ \\\" end\\",
    "UNICODE": "é ☃ 😀 \u2028 \u00a0",
    "NEWLINE": "line one\nline two\n\nKEY=not a variable",
    "CONTROL": "tab\tcr\rvt\x0bbell\x07",
    "EQUALS": "=a=b= # not a comment",
}


def envplane_in(stdin: str, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "envplane", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"ev{uuid.uuid4().hex[:6]}"
    busybox_app(tmp_path, name, free_port_block())
    spec = tmp_path / "envplane.yaml"
    spec.write_text(spec.read_text().replace(
        "    health: /health.txt\n", f"    health: /health.txt\n    secrets: [{', '.join(HOSTILE)}]\n"))
    env = {"DATA_PATH": "", "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}
    yield tmp_path, env, name
    cli("down", "test", "--pr", "4", "--purge", cwd=tmp_path, env=env)


def test_hostile_values_reach_the_container_exactly(app: tuple[Path, dict[str, str], str]) -> None:
    folder, env, name = app
    for key, value in HOSTILE.items():
        done = envplane_in(value, "secrets", "set", "test", key, "-s", "web", "--pr", "4", cwd=folder, env=env)
        assert done.returncode == 0, done.stderr
    up = cli("up", "test", "--pr", "4", cwd=folder, env=env)
    assert up.returncode == 0, up.stderr
    # `env -0` ends each variable with NUL, so a value with newlines reads back whole.
    printed = subprocess.run(["docker", "exec", f"{name}-web-pr-4", "env", "-0"], capture_output=True)
    assert printed.returncode == 0, printed.stderr
    inside = dict(item.decode().split("=", 1) for item in printed.stdout.split(b"\0") if item)
    assert {key: inside.get(key) for key in HOSTILE} == HOSTILE


def test_a_value_with_nul_is_refused_by_name(app: tuple[Path, dict[str, str], str]) -> None:
    folder, env, _ = app
    done = envplane_in("abc\0def", "secrets", "set", "test", "HASH", "-s", "web", "--pr", "4", cwd=folder, env=env)
    assert done.returncode == 2
    assert "HASH" in done.stderr and "NUL" in done.stderr and "abc" not in done.stderr
    listed = json.loads(cli("secrets", "list", "test", "--pr", "4", "--json", cwd=folder, env=env).stdout)
    assert listed == []  # nothing stored, nothing split


def test_compose_reads_back_every_random_value_exactly(tmp_path: Path) -> None:
    """2,000 random strings over the characters that matter, read back by Compose's parser."""
    from envplane.compose.dotenv import env_file_text

    need("Docker Compose v2", compose_v2(), "run scripts/services/docker.sh")
    pieces = [*"$#{}\"'\\ \n\r\t=:ab0é☃\x01\x0b\x0c\x85\u2028`!;&|<>*?~", "😀", "${HOME}", "$HOME", "$$",
              "\\n", "\\$", '\\"', "\\0123", " #", "${A:-b}"]
    chosen = random.Random(9)
    values = {f"V{i}": "".join(chosen.choice(pieces) for _ in range(chosen.randint(0, 30))) for i in range(2000)}
    (tmp_path / "web.env").write_text(env_file_text(values), encoding="utf-8")
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: busybox:stable\n    env_file: [web.env]\n")
    done = subprocess.run(["docker", "compose", "-p", f"ev{uuid.uuid4().hex[:6]}", "config", "--format", "json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)["services"]["web"]["environment"]
    # `config` prints a Compose file, where a literal `$` is written `$$`.
    assert {k: v.replace("$$", "$") for k, v in read.items()} == values
