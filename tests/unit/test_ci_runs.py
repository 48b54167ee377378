"""#9.13: each CI run gets its own `ci` instance, named from the CI system's own run id."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from envplane.errors import UsageError
from envplane.names import run_id
from envplane.spec.load import load_project
from envplane.target import instance_for, resolve

SPEC = "app: shop\ndomain: example.com\ncompose: compose.yaml\n"
COMPOSE = "services:\n  web:\n    image: busybox\n    ports: ['8080:8080']\n"


def ci_instance(tmp_path: Path, environ: dict[str, str], run: str | None = None) -> str:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "envplane.yaml").write_text(SPEC)
    return instance_for(load_project(tmp_path / "envplane.yaml", environ), "ci", run=run).id


@pytest.mark.parametrize(("environ", "expected"), [
    ({"GITHUB_RUN_ID": "9876543210"}, "ci-9876543210"),
    ({"CI_JOB_ID": "4242", "CI_PIPELINE_ID": "77"}, "ci-4242"),  # GitLab: a job, not its pipeline
    ({"CI_PIPELINE_ID": "77"}, "ci-77"),
    ({"BUILDKITE_BUILD_ID": "0190d2f4-1c2b-4f7e-9d8a-3b5e1f2a6c7d"}, None),  # long: shortened, see below
    ({"CI_RUN_ID": "31"}, "ci-31"),
])
def test_each_ci_system_names_its_run(tmp_path: Path, environ: dict[str, str], expected: str | None) -> None:
    got = ci_instance(tmp_path, environ)
    if expected is not None:
        assert got == expected
    else:
        assert got.startswith("ci-0190d2f4") and len(got) <= 3 + 20


def test_jenkins_builds_of_one_job_get_distinct_instances(tmp_path: Path) -> None:
    # BUILD_TAG is jenkins-${JOB_NAME}-${BUILD_NUMBER}: cutting it to length must keep the number's effect
    first = ci_instance(tmp_path, {"BUILD_TAG": "jenkins-finance-report-main-1041"})
    second = ci_instance(tmp_path, {"BUILD_TAG": "jenkins-finance-report-main-1042"})
    assert first != second
    assert first.startswith("ci-jenkins-")


def test_without_a_ci_run_id_it_is_an_error_not_a_shared_local_instance(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        ci_instance(tmp_path, {})
    assert "one instance per CI run" in info.value.message
    assert "--run" in (info.value.hint or "")
    assert "GITHUB_RUN_ID" in (info.value.hint or "") and "CI_JOB_ID" in (info.value.hint or "")


def test_run_option_wins_over_the_environment(tmp_path: Path) -> None:
    assert ci_instance(tmp_path, {"GITHUB_RUN_ID": "1", "CI_JOB_ID": "2"}, run="manual-7") == "ci-manual-7"


def test_github_wins_when_several_systems_are_set(tmp_path: Path) -> None:
    environ = {"GITHUB_RUN_ID": "1", "CI_JOB_ID": "2", "BUILD_TAG": "jenkins-x-3", "BUILDKITE_BUILD_ID": "4"}
    assert ci_instance(tmp_path, environ) == "ci-1"


SAFE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


@pytest.mark.parametrize("raw", [
    "../../etc/passwd", "a" * 500, "jenkins-" + "x" * 300 + "-1", "bäild-1", "büild-1", "Run_7", "run-7",
    "日本語-1", "x;rm -rf /", "-leading-and-trailing-", "A/B", "a/b",
])
def test_hostile_run_ids_become_safe_bounded_names(raw: str) -> None:
    name = run_id(raw)
    assert SAFE.match(name), name
    assert len(name) <= 20
    assert run_id(raw) == name  # the same run resolves the same instance in every command


def test_different_run_ids_never_share_a_name() -> None:
    raws = ["bäild-1", "büild-1", "Run_7", "run-7", "A/B", "a/b", "a-b", "../x", "x",
            "a" * 500, "a" * 501, "jenkins-" + "x" * 300 + "-1", "jenkins-" + "x" * 300 + "-2"]
    names = [run_id(raw) for raw in raws]
    assert len(set(names)) == len(raws), names


def test_a_plain_run_id_is_kept_as_it_is() -> None:
    assert [run_id(raw) for raw in ("42", "9876543210", "manual-7")] == ["42", "9876543210", "manual-7"]


def test_a_run_id_with_no_letter_or_digit_is_refused() -> None:
    with pytest.raises(UsageError):
        run_id("../")


def test_a_ci_target_carries_the_safe_name_everywhere(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "envplane.yaml").write_text(SPEC)
    project = load_project(tmp_path / "envplane.yaml", {"BUILD_TAG": "jenkins-../../evil-" + "x" * 80})
    target = resolve(project, "ci")
    assert ".." not in target.data_path and "/evil" not in target.data_path
    assert SAFE.match(target.project)
