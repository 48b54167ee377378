"""#14: the scheduler and /metrics as parts of `envplane serve`, and `envplane remote` against a
real server: the scheduler starts with the server and its jobs show in /api/v1/scheduler and
/metrics (a token with `read`; none: 401), a server started with ENVPLANE_SCHEDULER=off says
so as an alert, and a CI runner's remote commands get the server's refusals as exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from envplane import remote
from envplane.server.app import create_app
from tests.api_kit import World, make_world, serving
from tests.prometheus_format import parse

ROOT = Path(__file__).resolve().parents[2]
ON = {"ENVPLANE_SCHEDULER": "on", "ENVPLANE_SCHEDULE_BACKUP": "off", "ENVPLANE_SCHEDULE_DRILL": "off"}


@pytest.fixture()
def world(tmp_path: Path) -> World:
    return make_world(tmp_path, environ=ON)


@pytest.fixture()
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.environ), raise_server_exceptions=False) as client:
        yield client


def test_the_scheduler_runs_with_the_server_and_shows_in_the_api_and_metrics(client: TestClient,
                                                                               world: World) -> None:
    deadline = time.monotonic() + 60
    while True:
        answer = client.get("/api/v1/scheduler", headers=world.auth("reader"))
        assert answer.status_code == 200, answer.text
        jobs = {(j["app"], j["job"]): j for j in answer.json()["jobs"]}
        if jobs[(world.app, "preview-gc")]["last_run"] and jobs[(world.app, "preview-gc")]["state"] != "running":
            break
        assert time.monotonic() < deadline, answer.json()
        time.sleep(0.2)
    gc = jobs[(world.app, "preview-gc")]
    assert gc["state"] == "ok" and gc["last_run"]["message"] == "no preview was ever deployed"
    assert gc["every_seconds"] == 3600 and gc["next_run_at"] == gc["last_run"]["next_run_at"]
    assert jobs[(world.app, "backup")]["state"] == "off"
    assert answer.json()["enabled"] is True and answer.json()["alerts"] == []

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=world.auth("revoked")).status_code == 401
    shown = client.get("/metrics", headers=world.auth("reader"))
    assert shown.status_code == 200
    assert shown.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse(shown.text)
    ran = [s for s in samples if s.name == "envplane_job_last_run_timestamp_seconds"
           and s.label("app") == world.app and s.label("job") == "preview-gc"]
    assert len(ran) == 1 and ran[0].value > 0
    assert [s.value for s in samples if s.name == "envplane_app_loaded" and s.label("app") == world.app] == [1]


def test_a_server_without_its_scheduler_says_so_and_its_jobs_go_late(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from envplane.server import scheduler

    world = make_world(tmp_path, environ={"ENVPLANE_SCHEDULER": "off"})
    with TestClient(create_app(world.environ), raise_server_exceptions=False) as client:
        found = client.get("/api/v1/scheduler", headers=world.auth("reader")).json()
    assert found["enabled"] is False and found["alerts"] == []  # just registered: not late yet
    assert {j["state"] for j in found["jobs"] if j["job"] == "preview-gc"} == {"never"}
    store = scheduler.server_store(world.environ)
    later = scheduler.alerts(store, world.environ, datetime.now(UTC) + timedelta(hours=2, minutes=1))
    assert [a.id for a in later if a.job == "preview-gc"] == [f"preview-gc/{world.app}/never"]
    assert "is the scheduler running?" in later[0].message


def test_the_remote_commands_call_routes_the_server_has(client: TestClient) -> None:
    """Each operation `envplane remote` runs is a route of the server's own OpenAPI document."""
    paths = client.get("/api/openapi.json").json()["paths"]
    for method, template in (("post", "/api/v1/apps/{app}/previews"),
                             ("delete", "/api/v1/apps/{app}/previews/{pr}"),
                             ("post", "/api/v1/apps/{app}/releases"),
                             ("post", "/api/v1/apps/{app}/releases/{version}/promote"),
                             ("get", "/api/v1/jobs/{job_id}/events")):
        assert method in paths.get(template, {}), (method, template)


def envplane_remote(world: World, base: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "ENVPLANE_SERVER": base,
           "ENVPLANE_TOKEN": world.tokens[token], "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "envplane", "remote", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_remote_commands_against_envplane_serve(world: World) -> None:
    with serving(world) as served:
        refused = envplane_remote(world, served.base, "ci", "release", "staging", "--app", world.app)
        promote = envplane_remote(world, served.base, "ci", "promote", "v1.0.0", "--app", world.app)
        unknown = envplane_remote(world, served.base, "stager", "release", "staging", "--app", "nosuchapp")
        bad = envplane_remote(world, served.base, "admin", "promote", "1.0", "--app", world.app)
        nothing = envplane_remote(world, served.base, "ci", "preview", "down", "--app", world.app, "--pr", "7")
        other = envplane_remote(world, served.base, "reader", "preview", "down", "--app", world.app, "--pr", "7")
    assert refused.returncode == 1 and "may not deploy" in refused.stderr, refused.stderr
    assert promote.returncode == 1 and "may not deploy" in promote.stderr
    assert unknown.returncode == 1 and "nosuchapp" in unknown.stderr, unknown.stderr
    assert bad.returncode == 2, bad.stderr
    assert nothing.returncode == 0 and "nothing to remove" in nothing.stderr + nothing.stdout, nothing.stderr
    assert other.returncode == 1 and "may not deploy" in other.stderr, other.stderr
    for done in (refused, promote, unknown, bad):
        assert world.tokens["ci"] not in done.stderr + done.stdout
        assert world.tokens["admin"] not in done.stderr + done.stdout


def test_the_client_maps_the_servers_problems(world: World) -> None:
    """Against the real server: a revoked token is 401 with a hint to make a new one."""
    with serving(world) as served:
        server = remote.Server(served.base, remote.Secret(world.tokens["revoked"]))
        with pytest.raises(remote.BackendError) as info:
            remote.request(server, "GET", "/api/v1/apps")
    assert "envplane tokens create" in info.value.hint
