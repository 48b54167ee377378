"""Every corpus Compose file renders for every env, and Compose v2 accepts the result."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from envplane import actions
from tests.support import compose_v2, corpus_files, corpus_spec, need

ENVS = ["local", "docker", "ci", "test", "staging", "production", "dr"]
FILES = corpus_files()


def test_the_corpus_is_there() -> None:
    need("the Compose corpus in ../shared/corpus/compose", bool(FILES))
    assert len(FILES) >= 20


@pytest.mark.integration
@pytest.mark.parametrize("compose", FILES, ids=[f.parent.name for f in FILES])
def test_renders_for_every_env_and_compose_accepts_it(compose: Path, tmp_path: Path) -> None:
    need("docker compose v2", compose_v2(), "run scripts/services/docker.sh")
    project = actions.open_project(corpus_spec(compose, tmp_path), {})
    for env in ENVS:
        target = actions.resolve_checked(project, env, pr=7 if env == "test" else None)
        out = tmp_path / f"{env}.yaml"
        out.write_text(actions.render_text(project, target))
        done = subprocess.run(
            ["docker", "compose", "-f", str(out), "config", "-q"],
            capture_output=True, text=True, cwd=tmp_path, timeout=60,
        )
        assert done.returncode == 0, f"{env}: {done.stderr}"
        labels = subprocess.run(
            ["docker", "compose", "-f", str(out), "config", "--format", "json"],
            capture_output=True, text=True, cwd=tmp_path, timeout=60, check=True,
        ).stdout
        assert f'"envplane.instance": "{target.id}"' in labels
