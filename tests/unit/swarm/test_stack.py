"""The stack file of an instance on `runtime: swarm`, its plan, and what is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from envplane import actions
from envplane.commands import swarm as cmd
from envplane.compose.render import to_yaml
from envplane.errors import SpecError
from envplane.spec.load import load_project
from envplane.swarm.render import (
    ENV_SECRET_TARGET,
    Command,
    StackInputs,
    env_secret_name,
    env_secret_text,
    instance_stack,
    object_name,
    stack_name,
)
from envplane.target import Target, resolve

SPEC = """app: shop
domain: example.com
compose: compose.yaml
environments:
  staging: {runtime: swarm}
  test: {runtime: swarm}
hosts:
  server: ssh://root@10.0.0.1
"""

WEB = """services:
  web:
    image: shop:1
    init: true
    ports: ["8080:80"]
    healthcheck: {test: ["CMD", "true"], interval: 2s}
"""


def project_of(tmp_path: Path, compose: str, spec: str = "") -> Any:
    (tmp_path / "compose.yaml").write_text(compose)
    (tmp_path / "envplane.yaml").write_text(SPEC + spec)
    return load_project(tmp_path / "envplane.yaml", {})


def target_of(project: Any, env: str = "staging", pr: int | None = None) -> Target:
    return resolve(project, env, pr=pr)


def test_a_stack_per_instance_with_host_ports_overlay_networks_and_a_start_first_update(tmp_path: Path) -> None:
    project = project_of(tmp_path, WEB, "services:\n  web:\n    public: {port: 80}\n"
                         "    swarm: {replicas: 2, constraints: ['node.labels.zone == a']}\n")
    staging, pr = target_of(project), target_of(project, "test", 3)
    a, b = instance_stack(project, staging), instance_stack(project, pr)
    assert stack_name(staging) == "shop-staging" and stack_name(pr) == "shop-pr-3"
    web = a["services"]["web"]
    assert web["image"] == "shop:1" and "container_name" not in web
    assert web["ports"] == [{"target": 80, "published": staging.service("web").ports[0].published,
                             "protocol": "tcp", "mode": "host"}]
    assert b["services"]["web"]["ports"][0]["published"] != web["ports"][0]["published"]
    deploy = web["deploy"]
    assert deploy["replicas"] == 2 and deploy["endpoint_mode"] == "dnsrr"
    assert deploy["placement"] == {"constraints": ["node.labels.zone == a"], "max_replicas_per_node": 1}
    assert deploy["update_config"]["order"] == "start-first"
    assert deploy["update_config"]["failure_action"] == "rollback"
    assert deploy["labels"]["envplane.instance"] == "staging"
    assert web["labels"]["envplane.instance"] == "staging"  # the tasks' containers, for verify
    assert web["healthcheck"]["interval"] == "2s"
    assert a["networks"]["default"]["name"] != b["networks"]["default"]["name"]
    assert a["networks"]["default"]["driver"] == "overlay"
    assert "name" not in a  # a stack takes its name from the command line


def test_the_compose_files_own_deploy_is_read_and_envplane_yaml_wins(tmp_path: Path) -> None:
    compose = WEB + "    deploy:\n      replicas: 3\n      update_config: {order: stop-first}\n" \
        "      resources: {limits: {memory: 64M}}\n"
    project = project_of(tmp_path, compose)
    deploy = instance_stack(project, target_of(project))["services"]["web"]["deploy"]
    assert deploy["replicas"] == 3 and deploy["resources"] == {"limits": {"memory": "64M"}}
    assert deploy["update_config"]["order"] == "start-first"  # envplane's own
    project = project_of(tmp_path, compose, "services:\n  web:\n    swarm: {replicas: 2}\n")
    assert instance_stack(project, target_of(project))["services"]["web"]["deploy"]["replicas"] == 2


def test_a_stateful_service_runs_once_pinned_and_stops_first(tmp_path: Path) -> None:
    project = project_of(tmp_path, "services:\n  db:\n    image: postgres:16\n"
                         "    volumes: [data:/var/lib/postgresql/data]\nvolumes:\n  data: {}\n")
    found = instance_stack(project, target_of(project))
    deploy = found["services"]["db"]["deploy"]
    assert deploy["replicas"] == 1 and deploy["placement"]["constraints"] == ["node.role == manager"]
    assert deploy["update_config"]["order"] == "stop-first"
    assert found["volumes"]["data"]["name"] == target_of(project).volumes["data"]


def test_credentials_are_a_docker_secret_read_by_a_wrapper_never_a_value_in_the_file(tmp_path: Path) -> None:
    project = project_of(tmp_path, "services:\n  web:\n    image: shop:1\n    command: serve --port 80\n"
                         "    environment: {DATABASE_URL: 'sqlite:///local', KEEP: '1'}\n",
                         "services:\n  web: {uses: [postgres]}\nresources: {postgres: {}}\n")
    target = target_of(project)
    text = env_secret_text({"DATABASE_URL": "postgresql://shop:pa$$ 'w@db/shop"})
    name = env_secret_name(target, "web", text)
    found = instance_stack(project, target, StackInputs(env_secrets={"web": name},
                                                        commands={"web": Command(("/entry",), ("ignored",))}))
    web = found["services"]["web"]
    assert "DATABASE_URL" not in web["environment"] and web["environment"]["KEEP"] == "1"
    assert web["secrets"] == [{"source": "envplane-env-web", "target": ENV_SECRET_TARGET, "mode": 0o400}]
    assert found["secrets"]["envplane-env-web"] == {"external": True, "name": name}
    assert web["entrypoint"][:2] == ["/bin/sh", "-c"] and web["command"] == ["/entry", "serve", "--port", "80"]
    assert "pa$$" not in to_yaml(found) and "env_file" not in web
    # The wrapper reads back exactly the value, whatever it holds.
    script = web["entrypoint"][2].replace("$$", "$").replace("/run/secrets/" + ENV_SECRET_TARGET,
                                                             str(tmp_path / "env"))
    (tmp_path / "env").write_text(text)
    shown = subprocess.run(["sh", "-c", script, "x", "sh", "-c", 'printf %s "$DATABASE_URL"'],
                           capture_output=True, text=True, check=True).stdout
    assert shown == "postgresql://shop:pa$$ 'w@db/shop"


def test_secret_names_are_per_instance_and_content_and_fit_dockers_limit(tmp_path: Path) -> None:
    project = project_of(tmp_path, WEB)
    a, b = target_of(project), target_of(project, "test", 3)
    assert object_name(a, "secrets", "k", "1") != object_name(b, "secrets", "k", "1")
    assert object_name(a, "secrets", "k", "1") != object_name(a, "secrets", "k", "2")
    assert len(object_name(a, "secrets", "k" * 80, "1")) <= 64
    assert env_secret_text({"B": "x y", "A": "it's"}) == "A='it'\"'\"'s'\nB='x y'\n"
    with pytest.raises(ValueError):
        env_secret_text({"A=B": "x"})


def test_file_secrets_and_configs_are_named_per_instance_by_content(tmp_path: Path) -> None:
    (tmp_path / "key.txt").write_text("k")
    project = project_of(tmp_path, WEB + "    secrets: [key]\n    configs: [conf]\n"
                         "secrets:\n  key: {file: key.txt}\nconfigs:\n  conf: {file: key.txt}\n")
    target = target_of(project)
    found = instance_stack(project, target, StackInputs(contents={"secrets.key": "d1", "configs.conf": "d2"}))
    assert found["secrets"]["key"]["name"] == object_name(target, "secrets", "key", "d1")
    assert found["configs"]["conf"]["name"] == object_name(target, "configs", "conf", "d2")
    assert found["secrets"]["key"]["file"] == str(tmp_path / "key.txt")
    assert found["secrets"]["key"]["labels"]["envplane.instance"] == "staging"


@pytest.mark.parametrize(("compose", "field", "words"), [
    ("    network_mode: host\n", "network_mode", "does not map to Swarm"),
    ("    privileged: true\n", "privileged", "cannot be privileged"),
    ("    mem_limit: 1g\n", "mem_limit", "deploy.resources.limits.memory"),
    ("    deploy: {mode: global}\n", "mode", "global"),
    ("    ports: ['127.0.0.1:8080:80']\n", "ports", "one host address"),
])
def test_what_does_not_map_is_refused_at_plan_time_with_its_line(tmp_path: Path, compose: str, field: str,
                                                                  words: str) -> None:
    base = "services:\n  web:\n    image: shop:1\n"
    project = project_of(tmp_path, base + compose)
    with pytest.raises(SpecError) as caught:
        actions.plan(project, target_of(project))
    problem = caught.value.problems[0]
    assert words in problem.message and field in problem.field and problem.line == 4
    assert problem.file == tmp_path / "compose.yaml"


def test_harmless_values_and_a_non_swarm_env_are_not_refused(tmp_path: Path) -> None:
    project = project_of(tmp_path, "services:\n  web:\n    image: shop:1\n    privileged: false\n"
                         "    network_mode: host\n")
    actions.plan(project, target_of(project, "production"))  # compose: fine
    project = project_of(tmp_path, "services:\n  web:\n    image: shop:1\n    privileged: false\n")
    actions.plan(project, target_of(project))


def test_stateful_replicas_and_hooks_are_refused_in_envplane_yaml(tmp_path: Path) -> None:
    project = project_of(tmp_path, "services:\n  db:\n    image: postgres:16\n",
                         "services:\n  db: {swarm: {replicas: 2}}\n")
    with pytest.raises(SpecError) as caught:
        actions.plan(project, target_of(project))
    assert "runs once" in caught.value.problems[0].message
    assert caught.value.problems[0].file == tmp_path / "envplane.yaml"


def test_a_bad_constraint_is_refused_with_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        project_of(tmp_path, WEB, "services:\n  web:\n    swarm: {constraints: ['node.id == x; rm -rf /']}\n")
    assert "not a Swarm constraint" in str(caught.value)


def test_the_plan_of_a_swarm_env(tmp_path: Path) -> None:
    project = project_of(tmp_path, WEB, "services:\n  web:\n    public: {port: 80}\n")
    target = target_of(project)
    kinds = [s.kind for s in actions.plan(project, target).steps]
    assert kinds == ["lock", "isolation", "swarm", "directory", "images", "render", "deploy", "converge",
                     "prune", "route", "record"]
    described = " ".join(s.description for s in actions.plan(project, target).steps)
    assert "stack shop-staging" in described and "start-first" in described


def test_the_stack_file_is_valid_for_the_docker_cli(tmp_path: Path) -> None:
    """`docker stack config` (the CLI's own loader and schema) reads the file unchanged."""
    project = project_of(tmp_path, WEB, "services:\n  web:\n    public: {port: 80}\n")
    file = tmp_path / "stack.yaml"
    file.write_text(to_yaml(instance_stack(project, target_of(project), StackInputs(env_secrets={"web": "s"},
                                                                                    commands={"web": Command(
                                                                                        (), ("httpd",))}))))
    done = subprocess.run(["docker", "stack", "config", "--compose-file", str(file)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    read = yaml.safe_load(done.stdout)
    assert read["services"]["web"]["deploy"]["update_config"]["order"] == "start-first"


def test_commands_are_data() -> None:
    assert cmd.stack_deploy("/x/stack.yaml", "shop-staging", registry=False) == [
        "docker", "stack", "deploy", "--compose-file", "/x/stack.yaml", "--prune", "--resolve-image", "never",
        "shop-staging"]
    assert cmd.secret_create("n", {"envplane.app": "shop"}) == [
        "docker", "secret", "create", "--label", "envplane.app=shop", "n", "-"]
