"""The release parts of envplane.yaml: strategy, promotion order, gates and hooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane.errors import SpecError
from envplane.plan import plan_up
from envplane.release.gates import GateConfig, config_for
from envplane.spec.load import load_project
from envplane.target import resolve

COMPOSE = "services:\n  web:\n    image: busybox\n    ports: ['8080:8080']\n"
HEAD = "app: shop\ndomain: example.com\ncompose: compose.yaml\n"


def load(tmp_path: Path, extra: str = ""):  # type: ignore[no-untyped-def]
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "envplane.yaml").write_text(HEAD + extra)
    return load_project(tmp_path / "envplane.yaml", {})


def messages(tmp_path: Path, extra: str, env: str | None = None) -> list[str]:
    with pytest.raises(SpecError) as info:
        project = load(tmp_path, extra)
        if env:
            resolve(project, env)
    return [p.render().replace(str(tmp_path) + "/", "") for p in info.value.problems]


def test_the_ladder_promotes_test_to_staging_to_production_blue_green(tmp_path: Path) -> None:
    envs = load(tmp_path).envs
    assert (envs["staging"].promote_from, envs["production"].promote_from, envs["dr"].promote_from) == (
        "test", "staging", "production")
    assert envs["production"].strategy == "blue-green"
    assert envs["staging"].strategy == "recreate"
    assert envs["test"].promote_from is None


def test_production_gates_by_default_are_order_health_p95_and_approval(tmp_path: Path) -> None:
    envs = load(tmp_path).envs
    assert config_for(envs["production"].gates, True) == GateConfig(
        order=True, health=True, p95_ms=200.0, approval=True)
    assert config_for(envs["staging"].gates, True) == GateConfig(
        order=True, health=True, p95_ms=None, approval=False)


def test_naming_a_report_turns_its_gate_on_and_keeps_the_other_defaults(tmp_path: Path) -> None:
    envs = load(tmp_path, (
        "environments:\n  production:\n    gates:\n      junit: reports/{version}.xml\n"
        "      coverage: cov.xml\n      min_coverage: 90\n      security: trivy.json\n"
        "      max_severity: critical\n      changelog: CHANGELOG.md\n      p95_ms: 150\n")).envs
    config = config_for(envs["production"].gates, True)
    assert config == GateConfig(order=True, health=True, p95_ms=150.0, approval=True, tests=True,
                                min_coverage=90.0, max_severity="critical", changelog=True)


def test_an_env_extending_production_inherits_its_gates_and_strategy(tmp_path: Path) -> None:
    envs = load(tmp_path, "environments:\n  production-sg:\n    gates: {approval: false}\n").envs
    assert envs["production-sg"].strategy == "blue-green"
    assert config_for(envs["production-sg"].gates, True).approval is False
    assert config_for(envs["production-sg"].gates, True).p95_ms == 200.0


def test_p95_false_turns_the_performance_gate_off(tmp_path: Path) -> None:
    envs = load(tmp_path, "environments:\n  production:\n    gates: {p95: false}\n").envs
    assert config_for(envs["production"].gates, True).p95_ms is None


@pytest.mark.parametrize(("extra", "env", "expected"), [
    ("environments:\n  production:\n    strategy: rolling\n", None,
     "environments.production.strategy: input should be 'recreate' or 'blue-green' (envplane.yaml:6)"),
    ("environments:\n  production:\n    promote_from: qa\n", None,
     "environments.production.promote_from: unknown environment 'qa' (envplane.yaml:6)"),
    ("environments:\n  production:\n    gates:\n      max_severity: severe\n", None,
     "environments.production.gates.max_severity: input should be 'low', 'medium', 'high' or "
     "'critical' (envplane.yaml:7)"),
    ("environments:\n  production:\n    gates:\n      aproval: true\n", None,
     "environments.production.gates.aproval: unknown key (envplane.yaml:7)"),
    ("hooks:\n  migrate: {service: api, command: ./migrate}\n", "staging",
     "hooks.migrate.service: no service 'api' in the Compose files (envplane.yaml:5)"),
    ("hooks:\n  before: {service: web, command: ./migrate}\n", None,
     "hooks.before: input should be 'pre_deploy', 'migrate' or 'post_deploy' (envplane.yaml:5)"),
])
def test_bad_release_settings_name_file_line_and_field(tmp_path: Path, extra: str, env: str | None,
                                                       expected: str) -> None:
    assert messages(tmp_path, extra, env)[0].lower() == expected.lower()


def test_hooks_run_before_start_and_post_deploy_after_health(tmp_path: Path) -> None:
    project = load(tmp_path, (
        "services:\n  web: {public: 8080, health: /}\n"
        "hooks:\n  post_deploy: {service: web, command: ./warm}\n"
        "  migrate: {service: web, command: ./migrate}\n  pre_deploy: {service: web, command: ./check}\n"))
    plan = plan_up(resolve(project, "staging"), tmp_path, hooks=project.spec.hooks)
    kinds = [s.kind for s in plan.steps]
    assert kinds.index("hook:pre_deploy") < kinds.index("hook:migrate") < kinds.index("start")
    assert kinds.index("health") < kinds.index("hook:post_deploy") < kinds.index("record")
    migrate = plan.steps[kinds.index("hook:migrate")]
    assert (migrate.resource, migrate.command) == ("web", ("sh", "-c", "./migrate"))
