"""One engine query where one does (#11.3): the engine check and each poll of a health wait.

`docker info` asks every CLI plugin for its metadata (0.2-0.5 s measured on the development
machine); `docker version` answers in ~0.02 s and fails the same way when no engine answers.
A health wait polled `docker ps` then `docker inspect`; one `docker ps` line per container
carries the state and health it needs. Builders are exact lists; the parser is tested on
lines `docker ps` printed.
"""

from __future__ import annotations

from envplane.backends.runtime.facts import parse_states
from envplane.commands import docker

# Statuses recorded from Docker 20.10 (`docker ps --all --no-trunc ... --format docker.STATE_FORMAT`).
RECORDED = """\
{"id":"ba2d71ffef56","name":"shop-web-pr-1","state":"running","status":"Up 40 seconds (healthy)","service":"web"}
{"id":"4b6046d44dca","name":"shop-worker-pr-1","state":"running","status":"Up 40 seconds","service":"worker"}
{"id":"aa11","name":"shop-api-pr-1","state":"running","status":"Up Less than a second (health: starting)","service":"api"}
{"id":"bb22","name":"shop-db-pr-1","state":"running","status":"Up 4 seconds (unhealthy)","service":"db"}
{"id":"cc33","name":"shop-job-pr-1","state":"exited","status":"Exited (1) 3 seconds ago","service":"job"}

"""


def test_the_engine_check_asks_for_the_server_version() -> None:
    assert docker.server_version() == ["docker", "version", "--format", "{{json .Server.Version}}"]


def test_container_states_are_one_listing_by_the_instance_labels() -> None:
    assert docker.states("shop", "pr-1") == [
        "docker", "ps", "--all", "--no-trunc", "--filter", "label=envplane.app=shop",
        "--filter", "label=envplane.instance=pr-1", "--format", docker.STATE_FORMAT]
    assert '{{json (.Label "com.docker.compose.service")}}' in docker.STATE_FORMAT


def test_state_and_health_are_read_from_the_listing() -> None:
    found = {f.service: (f.name, f.state, f.health) for f in parse_states(RECORDED)}
    assert found == {
        "web": ("shop-web-pr-1", "running", "healthy"),
        "worker": ("shop-worker-pr-1", "running", None),  # no healthcheck
        "api": ("shop-api-pr-1", "running", "starting"),
        "db": ("shop-db-pr-1", "running", "unhealthy"),
        "job": ("shop-job-pr-1", "exited", None),
    }


def test_a_container_name_that_looks_like_health_is_not_read_as_health() -> None:
    line = ('{"id":"dd44","name":"x (healthy)","state":"created","status":"Created","service":"x"}\n')
    assert [(f.state, f.health) for f in parse_states(line)] == [("created", None)]
