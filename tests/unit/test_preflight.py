"""#10.3: the pre-flight phase of a plan, and the pure parts of its checks.

`up` proves the new instance can start before it makes or touches anything: the plan puts
every check (isolation, ports, servers, secrets, images, a trial of the new containers)
before the first folder, password, database, bucket, Redis user, Compose file or container.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envplane import actions
from envplane.backends.runtime.facts import DEFAULT_PATH, Launch, parse_launches
from envplane.plan import plan_up
from envplane.preflight import (
    LABEL_TRIAL,
    command_paths,
    create_hint,
    image_of,
    mount_targets,
    proof,
    trial_model,
)
from tests.support import cli

SPEC = """\
app: shop
domain: example.com
compose: compose.yaml
services:
  web: {public: 8080, health: /, uses: [postgres, s3, redis], secrets: [API_KEY]}
resources: {postgres: {}, s3: {}, redis: {}}
"""
COMPOSE = """\
services:
  web:
    build: .
    container_name: shop-web
    ports: ["8080:8080"]
    volumes: ["data:/data", "./bin:/opt/bin:ro"]
    networks: [front]
  worker:
    image: busybox:stable
    network_mode: service:web
networks:
  front: {}
volumes:
  data: {}
"""
PREFLIGHT = ["lock", "isolation", "ports", "servers", "user-secrets", "images", "trial"]


def project(tmp_path: Path) -> actions.Project:
    (tmp_path / "envplane.yaml").write_text(SPEC)
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    return actions.open_project(tmp_path / "envplane.yaml", {})


def test_every_check_comes_before_the_first_change(tmp_path: Path) -> None:
    p = project(tmp_path)
    steps = plan_up(actions.resolve(p, "staging"), tmp_path, hooks=p.spec.hooks).steps
    kinds = [s.kind for s in steps]
    assert kinds[: len(PREFLIGHT)] == PREFLIGHT
    assert {s.phase for s in steps[: len(PREFLIGHT)]} == {"preflight"}
    assert all(s.phase == "apply" for s in steps[len(PREFLIGHT):])
    assert kinds[len(PREFLIGHT):][:4] == ["directory", "directory", "secrets", "database"]
    assert kinds.index("trial") < kinds.index("render") < kinds.index("start")


def test_up_build_builds_in_the_pre_flight_before_any_resource(tmp_path: Path) -> None:
    p = project(tmp_path)
    kinds = [s.kind for s in plan_up(actions.resolve(p, "staging"), tmp_path, build=True).steps]
    assert kinds.index("user-secrets") < kinds.index("build") < kinds.index("images") < kinds.index("secrets")


def test_the_local_env_checks_isolation_only(tmp_path: Path) -> None:
    (tmp_path / "envplane.yaml").write_text(SPEC.replace("health: /,", "health: /, dev: ./run,"))
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    p = actions.open_project(tmp_path / "envplane.yaml", {})
    steps = plan_up(actions.resolve(p, "local"), tmp_path).steps
    assert [s.kind for s in steps if s.phase == "preflight"] == ["lock", "isolation"]


def test_plan_shows_the_pre_flight(tmp_path: Path) -> None:
    project(tmp_path)
    done = cli("plan", "staging", "--json", cwd=tmp_path, env={"ENVPLANE_POSTGRES_URL": ""})
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)["steps"]
    assert [s["kind"] for s in steps if s["phase"] == "preflight"] == PREFLIGHT
    shown = cli("plan", "staging", cwd=tmp_path, env={"COLUMNS": "200"})
    assert "pre-flight" in shown.stdout and "apply" in shown.stdout


def test_the_trial_takes_nothing_of_the_instance(tmp_path: Path) -> None:
    p = project(tmp_path)
    target = actions.resolve(p, "staging")
    from envplane.compose.render import render

    rendered = render(target, tmp_path, {}, env_files_exist=False)
    trial = trial_model(rendered, target.project)
    web, worker = trial["services"]["web"], trial["services"]["worker"]
    assert "container_name" not in web and "volumes" not in web and "volumes" not in trial
    assert web["image"] == f"{target.project}-web" and "build" in web  # the image `up` would build
    assert worker["image"] == "busybox:stable" and worker["network_mode"] == "service:web"
    assert web["labels"][LABEL_TRIAL] == "true"
    assert all("name" not in n for n in trial["networks"].values())  # the trial's own networks
    assert rendered["services"]["web"]["container_name"] == "shop-web-staging"  # the instance's untouched


def test_a_service_without_image_runs_the_one_compose_builds() -> None:
    assert image_of("shop-staging", "web", {"build": "."}) == "shop-staging-web"
    assert image_of("shop-staging", "web", {"build": ".", "image": "shop/web:1"}) == "shop/web:1"


@pytest.mark.parametrize(("argv", "workdir", "mounts", "expected"), [
    (("httpd", "-f"), "/", [], [f"{d}/httpd" for d in DEFAULT_PATH.split(":")]),
    (("/bin/sh", "-c", "x"), "/", [], ["/bin/sh"]),
    (("./run.sh",), "/app", [], ["/app/run.sh"]),
    (("/opt/bin/run",), "/", ["/opt/bin"], None),  # a mount may bring it: not provable absent
    (("run",), "/", ["/usr/local/bin"], None),
    (("/bin/sh",), "/", ["/data", "relative"], ["/bin/sh"]),
    ((), "/", [], []),
])
def test_where_a_command_is_looked_for(argv: tuple[str, ...], workdir: str, mounts: list[str],
                                       expected: list[str] | None) -> None:
    launch = Launch("c1", "web", "img", argv, DEFAULT_PATH, workdir)
    assert command_paths(launch, mounts) == expected


def test_mount_targets_of_every_form() -> None:
    svc = {"volumes": ["data:/data", {"type": "bind", "source": ".", "target": "/app"}, "a:b:c:d"],
           "tmpfs": ["/run:size=1m", "/tmp"]}
    assert mount_targets(svc) == ["/data", "/app", "/run", "/tmp"]
    assert mount_targets({"tmpfs": "/cache"}) == ["/cache"]


RECORDED = """[{"Id": "abc", "Config": {"Image": "busybox:stable", "Entrypoint": null,
 "Cmd": ["httpd", "-f"], "Env": ["PATH=/bin:/usr/bin", "X=1"], "WorkingDir": "",
 "Labels": {"com.docker.compose.service": "web"}}},
 {"Id": "def", "Config": {"Image": "py", "Entrypoint": ["python3"], "Cmd": ["app.py"], "Env": null,
 "WorkingDir": "/srv", "Labels": {}}}]"""


def test_what_a_created_container_would_run_is_read_from_docker_inspect() -> None:
    assert parse_launches(RECORDED) == [
        Launch("abc", "web", "busybox:stable", ("httpd", "-f"), "/bin:/usr/bin", "/"),
        Launch("def", "", "py", ("python3", "app.py"), DEFAULT_PATH, "/srv"),
    ]


def test_a_trial_passed_once_is_known_by_its_file_and_images() -> None:
    first = proof("services: {}\n", {"web": "sha256:1"})
    assert proof("services: {}\n", {"web": "sha256:1"}) == first
    assert proof("services: {}\n", {"web": "sha256:2"}) != first  # rebuilt: prove again
    assert proof("services: {a: {}}\n", {"web": "sha256:1"}) != first


def test_an_engine_out_of_network_addresses_is_told_how_to_make_room() -> None:
    """With ~30 previews the engine's default address pools run out (#11 scale): the hint
    says so, instead of blaming the Compose file."""
    refused = ("failed to create network sc1-pr-16-trial_default: Error response from daemon: could not "
               "find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
    assert "default-address-pools" in create_hint(refused)
    assert "Compose file" not in create_hint(refused)
    assert create_hint("services.web.image must be a string") == "fix the Compose file"
