"""Every corpus Compose file renders for every env, and Compose v2 accepts the result."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from envplane import actions
from envplane.compose.render import render, to_yaml
from envplane.errors import IsolationError
from envplane.release.colours import coloured, published, stateful_part
from tests.support import CORPUS_SHARED, compose_v2, corpus_files, corpus_spec, need

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
        target = actions.resolve_checked(project, env, pr=7 if env == "test" else None,
                                         run="42" if env == "ci" else None)
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


@pytest.mark.parametrize("name", sorted(CORPUS_SHARED))
def test_a_host_folder_every_instance_mounts_is_refused_until_the_spec_shares_it(
    name: str, tmp_path: Path
) -> None:
    need("the Compose corpus in ../shared/corpus/compose", bool(FILES))
    [compose] = [f for f in FILES if f.parent.name == name]
    (tmp_path / "envplane.yaml").write_text(f"app: {name}\ndomain: example.com\ncompose: {compose}\n")
    project = actions.open_project(tmp_path / "envplane.yaml", {})
    with pytest.raises(IsolationError, match=f"host path {CORPUS_SHARED[name]} is claimed by both staging"):
        actions.resolve_checked(project, "staging")
@pytest.mark.integration
@pytest.mark.parametrize("compose", FILES, ids=[f.parent.name for f in FILES])
def test_blue_green_splits_it_into_projects_compose_accepts(compose: Path, tmp_path: Path) -> None:
    """Production's colour and its stateful project: each service in exactly one, both valid."""
    need("docker compose v2", compose_v2(), "run scripts/services/docker.sh")
    project = actions.open_project(corpus_spec(compose, tmp_path), {})
    target = actions.resolve_checked(project, "production")
    colour = coloured(target, "green", {key: 40000 + i for i, key in enumerate(published(target))})
    seen: list[str] = []
    for name, part in (("stateful", stateful_part(target)), ("green", colour)):
        data = render(part, compose.parent)
        seen += list(data["services"])
        if not data["services"]:
            continue
        out = tmp_path / f"{name}.yaml"
        out.write_text(to_yaml(data))
        done = subprocess.run(["docker", "compose", "-f", str(out), "config", "-q"],
                              capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert done.returncode == 0, f"{name}: {done.stderr}"
    assert sorted(seen) == sorted(s.name for s in target.services)
