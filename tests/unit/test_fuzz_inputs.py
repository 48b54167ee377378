"""#9.21: bad input never crashes `plan`, `render` or `envs`.

Hypothesis mutates a valid spec and Compose file (every place, every wrong type, hostile
values, unknown and missing keys) and runs the pair through the functions the CLI calls.
Any exception but an EnvplaneError naming file and field (exit 2) fails the test. The
examples are fixed (derandomized) so the suite is repeatable; ENVPLANE_FUZZ_EXAMPLES=5000
ENVPLANE_FUZZ_RANDOM=1 explores new ones. The second round mutates the Compose corpus.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_kit import (
    ENVS,
    EXAMPLES,
    RANDOM,
    RICH_COMPOSE,
    RICH_SPEC,
    WEIRD_TEXT,
    mutated,
    outcome,
    to_yaml,
)
from tests.support import CORPUS_SHARED, corpus_files, need

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
                suppress_health_check=list(HealthCheck))
ENVIRON_KEYS = ["DATA_PATH", "PR_NUMBER", "ENV_SUFFIX", "GITHUB_RUN_ID", "CI_JOB_ID", "DEPLOY_ENV", "X"]
environs = st.dictionaries(st.sampled_from(ENVIRON_KEYS),
                           st.sampled_from([t for t in WEIRD_TEXT if "\x00" not in t]), max_size=2)


@pytest.mark.parametrize(("env", "pr", "run"), ENVS)
def test_the_seeds_are_valid(env: str, pr: int | None, run: str | None, tmp_path: Path) -> None:
    result = outcome(tmp_path, to_yaml(RICH_SPEC), to_yaml(RICH_COMPOSE), env, pr, run)
    assert result.ok, result.error


@FUZZ
@given(spec=mutated(RICH_SPEC), compose=mutated(RICH_COMPOSE), which=st.sampled_from(["spec", "compose", "both"]),
       where=st.sampled_from(ENVS), environ=environs)
def test_a_mutated_spec_and_compose_file_fail_only_with_file_and_field(
    spec: object, compose: object, which: str, where: tuple[str, int | None, str | None],
    environ: dict[str, str],
) -> None:
    spec_text = to_yaml(spec if which != "compose" else RICH_SPEC)
    compose_text = to_yaml(compose if which != "spec" else RICH_COMPOSE)
    with tempfile.TemporaryDirectory() as folder:
        outcome(Path(folder), spec_text, compose_text, *where, environ=environ)


CORPUS = corpus_files()


def corpus_spec(name: str) -> str:
    shared = CORPUS_SHARED.get(name)
    return (f"app: {name[:40]}\ndomain: example.com\ncompose: compose.yaml\n"
            + (f"shared:\n  binds: [{shared}]\n" if shared else ""))


@FUZZ
@given(data=st.data(), where=st.sampled_from(ENVS))
def test_the_compose_corpus_mutated_fails_only_with_file_and_field(
    data: st.DataObject, where: tuple[str, int | None, str | None]
) -> None:
    need("the Compose corpus in ../shared/corpus/compose", bool(CORPUS))
    from ruamel.yaml import YAML

    path = data.draw(st.sampled_from(CORPUS))
    original = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    compose = data.draw(mutated(original))
    with tempfile.TemporaryDirectory() as folder:
        outcome(Path(folder), corpus_spec(path.parent.name), to_yaml(compose), *where)
