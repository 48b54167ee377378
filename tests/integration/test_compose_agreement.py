"""#10.2: the `compose` column of tests/unit/compose/compose_verdicts.yaml is what docker compose says.

Each case is judged by `docker compose config -q`, or by the engine on `docker compose
create` / `up` (in a project of its own, removed after) where Compose's loader lets the
value through. Together with tests/unit/compose/test_compose_verdicts.py this proves envplane
refuses at plan time every snippet Compose refuses.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from envplane import actions
from envplane.errors import SpecError
from tests.support import compose_v2, docker_engine, ensure_busybox_image, need
from tests.unit.compose.verdicts import case_id, cases, compose_text

CASES = cases()


def _verdict(case: dict[str, Any], index: int, folder: Path) -> tuple[bool, str]:
    """Whether docker compose accepts the case, and what it said."""
    file = folder / f"case{index}.yaml"
    file.write_text(compose_text(case), encoding="utf-8")
    project = f"agree{os.getpid()}-{index}"
    base = ["docker", "compose", "-p", project, "-f", str(file)]
    judge = {"config": ["config", "-q"], "create": ["create", "--pull", "never", "w"],
             "up": ["up", "-d", "--pull", "never", "--no-deps", "w"]}[case["judge"]]
    try:
        done = subprocess.run([*base, *judge], capture_output=True, text=True, timeout=120)
    finally:
        if case["judge"] != "config":
            subprocess.run([*base, "down", "-t", "0"], capture_output=True, timeout=120)
    return done.returncode == 0, (done.stderr or done.stdout).strip()[-300:]


@pytest.mark.integration
def test_docker_compose_gives_the_verdicts_of_the_table(tmp_path: Path) -> None:
    need("docker compose v2", compose_v2(), "run scripts/services/docker.sh")
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(lambda pair: _verdict(pair[1], pair[0], tmp_path), enumerate(CASES)))
    wrong = [f"{case_id(case)} ({case['judge']}): table says {case['compose']}, compose says {ok}: {said}"
             for case, (ok, said) in zip(CASES, verdicts, strict=True) if ok != case["compose"]]
    assert not wrong, "\n".join(wrong)


def _rendered_verdict(case: dict[str, Any], index: int, folder: Path) -> tuple[bool, str] | None:
    """docker compose config's verdict on envplane's own staging file of the case; None when
    envplane refuses the case."""
    app = folder / f"app{index}"
    app.mkdir()
    (app / "compose.yaml").write_text(compose_text(case), encoding="utf-8")
    (app / "envplane.yaml").write_text("app: agree\ndomain: example.com\ncompose: compose.yaml\n")
    try:
        project = actions.open_project(app / "envplane.yaml", {})
        text = actions.render_text(project, actions.resolve_checked(project, "staging"))
    except SpecError:
        return None
    (app / "staging.yaml").write_text(text, encoding="utf-8")
    done = subprocess.run(["docker", "compose", "-f", str(app / "staging.yaml"), "config", "-q"],
                          capture_output=True, text=True, timeout=120)
    return done.returncode == 0, done.stderr.strip()[-300:]


@pytest.mark.integration
def test_what_envplane_accepts_it_renders_as_compose_reads_it(tmp_path: Path) -> None:
    """Every snippet envplane accepts, rendered for staging (ports moved, names given), is a
    file docker compose accepts: IPv6 addresses, ranges, protocols and sizes survive rendering."""
    need("docker compose v2", compose_v2(), "run scripts/services/docker.sh")
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(lambda pair: _rendered_verdict(pair[1], pair[0], tmp_path), enumerate(CASES)))
    rendered = [(case, v) for case, v in zip(CASES, verdicts, strict=True) if v is not None]
    assert len(rendered) == sum(1 for c in CASES if c.get("envplane", c["compose"]))
    wrong = [f"{case_id(case)}: {said}" for case, (ok, said) in rendered if not ok]
    assert not wrong, "\n".join(wrong)
