"""resolve(): every concrete name of an env instance, and the isolation invariant."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane import actions, isolation
from envplane.errors import IsolationError, SpecError, UsageError
from envplane.spec.load import Project, load_project
from envplane.target import resolve

COMPOSE = """\
services:
  backend:
    build: ./backend
    ports: ["8000:8000"]
    volumes: ["backend_data:/data"]
  frontend:
    image: busybox
    ports: ["3000:8080"]
  postgres:
    image: postgres:16
    ports: ["5432:5432"]
volumes:
  backend_data: {}
networks:
  internal: {}
"""

SPEC = """\
app: finance-report
domain: example.com
prefix: report
compose: compose.yaml
services:
  backend:
    public: {port: 8000, path: /api}
    health: /api/health
    dev: python backend/app.py
  frontend:
    public: {port: 8080, path: /}
    dev: python frontend/serve.py
resources:
  postgres: {}
  s3: {}
  redis: {}
"""


def project(tmp_path: Path, spec: str = SPEC, compose: str = COMPOSE, environ: dict[str, str] | None = None) -> Project:
    (tmp_path / "compose.yaml").write_text(compose)
    (tmp_path / "envplane.yaml").write_text(spec)
    return load_project(tmp_path / "envplane.yaml", environ or {})


def test_staging_names(tmp_path: Path) -> None:
    t = resolve(project(tmp_path), "staging")
    assert t.project == "finance-report-staging"
    assert t.domain == "report-staging.example.com"
    assert t.data_path == "/data/finance-report/staging"
    assert t.secrets_prefix == "secret/data/finance-report/staging"
    assert (t.database, t.role) == ("finance_report_staging", "finance_report_staging")
    assert t.bucket == "finance-report-staging"
    assert t.redis_prefix == "finance-report:staging:"
    assert t.service("postgres").container_name == "finance-report-postgres-staging"
    assert t.volumes == {"backend_data": "finance-report-staging_backend_data"}
    assert t.volume_paths == {"backend_data": "/data/finance-report/staging/backend_data"}
    assert t.networks["internal"] == "finance-report-staging_internal"
    assert t.service("backend").url == "https://report-staging.example.com/api"
    assert t.variables["DEPLOY_ENV"] == "staging"
    assert t.variables["ENV_SUFFIX"] == "-staging"
    assert t.variables["ENV_DOMAIN_SUFFIX"] == "-staging"
    assert t.variables["DATA_PATH"] == "/data/finance-report/staging"


def test_pr_instance_names_follow_seed_000(tmp_path: Path) -> None:
    t = resolve(project(tmp_path), "test", pr=123)
    assert t.id == "pr-123"
    assert t.domain == "report-pr-123.example.com"
    assert t.data_path == "/data/test/finance-report-pr-123"
    assert t.secrets_prefix == "secret/data/finance-report/test-pr-123"
    assert t.service("postgres").container_name == "finance-report-postgres-pr-123"
    assert t.database == "finance_report_pr_123"


def test_production_has_no_suffix(tmp_path: Path) -> None:
    t = resolve(project(tmp_path), "production")
    assert t.project == "finance-report"
    assert t.domain == "report.example.com"
    assert t.variables["ENV_SUFFIX"] == ""
    assert [p.published for p in t.service("postgres").ports] == [5432]


def test_pr_from_env_suffix_like_seed_000(tmp_path: Path) -> None:
    p = project(tmp_path, environ={"ENV_SUFFIX": "-pr-77", "DATA_PATH": "/srv/finance-report-pr-77"})
    t = resolve(p, "test")
    assert t.id == "pr-77"
    assert t.data_path == "/srv/finance-report-pr-77"


def test_test_env_needs_a_pr(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="one instance per pull request"):
        resolve(project(tmp_path), "test")


def test_unknown_env_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        resolve(project(tmp_path), "qa")
    assert "staging" in info.value.hint


def test_local_runs_dev_commands_on_the_host_ports(tmp_path: Path) -> None:
    t = resolve(project(tmp_path), "local")
    assert t.service("backend").env["PORT"] == "8000"
    assert t.service("frontend").env["PORT"] == "3000"
    assert t.service("backend").url == "http://localhost:8000/api"
    assert t.data_path == str(tmp_path / ".envplane/data/finance-report-local")


def test_compose_files_may_use_the_ladder_variables(tmp_path: Path) -> None:
    compose = COMPOSE.replace("image: busybox", "image: busybox\n    command: ['echo', '${DATA_PATH}${ENV_SUFFIX}']")
    t = resolve(project(tmp_path, compose=compose), "staging")
    assert t.compose.data["services"]["frontend"]["command"] == ["echo", "/data/finance-report/staging-staging"]


def test_two_services_on_one_host_port_is_an_error_naming_both(tmp_path: Path) -> None:
    compose = COMPOSE.replace('"5432:5432"', '"8000:5432"')
    with pytest.raises(SpecError) as info:
        resolve(project(tmp_path, compose=compose), "production")
    [problem] = info.value.problems
    assert "host port 8000/tcp is claimed by both services.backend and services.postgres" in problem.message
    assert problem.file is not None and problem.file.name == "compose.yaml"
    assert problem.line == 11


def test_spec_service_missing_from_compose(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        resolve(project(tmp_path, spec=SPEC.replace("  frontend:\n", "  front:\n")), "staging")
    assert "no service 'front' in the Compose files" in str(info.value)


def test_all_envs_and_many_prs_never_clash(tmp_path: Path) -> None:
    p = project(tmp_path)
    targets = [resolve(p, name) for name, cfg in p.envs.items() if cfg.instances == "one"]
    targets += [resolve(p, "test", pr=n) for n in range(1, 40)]
    targets += [resolve(p, "ci", run=str(n)) for n in range(1, 5)]
    assert isolation.violations(targets) == []


def test_seed_003_port_table_is_reproduced(tmp_path: Path) -> None:
    """Seed 003: staging = production + 1, with main-server moved to 3003 by hand."""
    compose = """\
services:
  app: {image: app, ports: ["3001:3000"]}
  ai-app: {image: ai, ports: ["8000:8000"]}
  postgres: {image: postgres, ports: ["5432:5432"]}
  mongo: {image: mongo, ports: ["27017:27017"]}
  redis: {image: redis, ports: ["6379:6379"]}
  rabbitmq: {image: rabbitmq, ports: ["5672:5672", "15672:15672"]}
  monitor-dashboard: {image: dash, ports: ["3002:3002"]}
"""
    base = "app: bot\ndomain: example.com\ncompose: compose.yaml\nenvironments:\n  staging:\n    port_offset: 1\n"
    p = project(tmp_path, spec=base, compose=compose)
    with pytest.raises(IsolationError) as info:
        actions.resolve_checked(p, "staging")
    assert str(info.value) == "host port 3002/tcp is claimed by both staging and production"
    # The seed's overlay drops the dashboard from staging and moves the app to 3003.
    (tmp_path / "staging.yml").write_text('services:\n  monitor-dashboard: {profiles: ["disabled"]}\n')
    fixed = base + "    compose: staging.yml\n    ports:\n      app: {3000: 3003}\n"
    t = actions.resolve_checked(project(tmp_path, spec=fixed, compose=compose), "staging")
    table = {(s.name, p.source): p.published for s in t.services for p in s.ports}
    assert table == {
        ("app", 3001): 3003,
        ("ai-app", 8000): 8001,
        ("postgres", 5432): 5433,
        ("mongo", 27017): 27018,
        ("redis", 6379): 6380,
        ("rabbitmq", 5672): 5673,
        ("rabbitmq", 15672): 15673,
    }


def test_data_path_from_the_environment_is_the_current_instance_s_only(tmp_path: Path) -> None:
    p = project(tmp_path, environ={"DATA_PATH": "/srv/finance-report/pr-9"})
    t = actions.resolve_checked(p, "test", pr=9)  # other envs keep their own paths: no clash
    assert t.data_path == "/srv/finance-report/pr-9"


def test_an_instance_id_reads_back_as_the_instance_it_names() -> None:
    from envplane.names import Instance

    for instance in (Instance("test", pr=123), Instance("ci", run="42"), Instance("staging")):
        assert Instance.from_id(instance.env, instance.id) == instance
    assert Instance.from_id("test", "pr-x") == Instance("test")  # not a PR number


def test_docker_and_production_are_apart_on_the_local_proxy_too(tmp_path: Path) -> None:
    """#10 (the tour): the proxy serves production's report.example.com on this host as
    report.localhost, so docker's domain could not be report.localhost: both would answer."""
    p = project(tmp_path)
    assert resolve(p, "docker").domain == "report-docker.localhost"
    targets = [resolve(p, name) for name, cfg in p.envs.items() if cfg.instances == "one"]
    assert isolation.violations(targets) == []

    old_default = project(tmp_path, spec=SPEC + "environments:\n  docker: {domain: '{prefix}.localhost'}\n")
    clashes = isolation.violations([resolve(old_default, "docker"), resolve(old_default, "production")])
    assert [(v.kind, v.value) for v in clashes] == [("domain", "report.localhost")]
