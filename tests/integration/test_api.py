"""#14: the HTTP API, against the ASGI app (httpx, through Starlette's TestClient) and a real
`envplane serve` process: tokens and scopes on every route, problem+json errors with the
CLI's messages, and a deploy run as a job whose events stream as Server-Sent Events."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from envplane.server.app import create_app
from tests.api_kit import World, make_world, serving, sse
from tests.support import docker_engine, ensure_busybox_image, need

SAMPLES = {"app": None, "env": "test", "job_id": "0" * 32, "version": "v1.0.0", "service": "web", "pr": "7"}


@pytest.fixture()
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture()
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.environ), raise_server_exceptions=False) as client:
        yield client


def routes(client: TestClient, world: World) -> list[tuple[str, str]]:
    """Every (method, path) of /api/v1 in the OpenAPI document, its parameters filled in."""
    paths = client.get("/api/openapi.json").json()["paths"]
    found = []
    for path, operations in paths.items():
        if not path.startswith("/api/v1/"):
            continue
        concrete = re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)] or world.app, path)
        found += [(method.upper(), concrete) for method in operations]
    return found


def is_problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["detail"]
    return body


def test_healthz_and_the_openapi_document_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    checked = client.head("/healthz")  # how many load balancers and monitors ask
    assert checked.status_code == 200 and checked.content == b""
    document = client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/api/v1/apps/{app}/status", "/api/v1/jobs/{job_id}/events"} <= set(document["paths"])
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


@pytest.mark.parametrize("token", [None, "unknown", "expired", "revoked"])
def test_every_api_route_refuses_a_request_without_a_valid_token(client: TestClient, world: World,
                                                                 token: str | None) -> None:
    headers = {} if token is None else {"Authorization": "Bearer envp_not-a-token"} if token == "unknown" \
        else world.auth(token)
    every = routes(client, world)
    assert len(every) >= 10
    for method, path in every:
        answer = client.request(method, path, headers=headers, json={})
        body = is_problem(answer, 401)
        assert answer.headers["www-authenticate"].startswith("Bearer"), (method, path)
        assert world.tokens.get(token or "", "envp_not-a-token") not in json.dumps(body)


def test_a_malformed_authorization_header_is_refused(client: TestClient, world: World) -> None:
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", world.tokens["admin"]):
        body = is_problem(client.get("/api/v1/apps", headers={"Authorization": header}), 401)
        assert world.tokens["admin"] not in body["detail"]


def test_every_scope_reads(client: TestClient, world: World) -> None:
    for token in ("reader", "logs", "ci", "approver", "admin"):
        answer = client.get("/api/v1/apps", headers=world.auth(token))
        assert answer.status_code == 200 and answer.json() == [{"name": world.app}]


def test_a_deploy_test_token_may_change_test_only(client: TestClient, world: World) -> None:
    ci, app = world.auth("ci"), f"/api/v1/apps/{world.app}"
    for method, path, body in [
        ("POST", f"{app}/envs/production/up", {}),
        ("POST", f"{app}/envs/staging/up", {}),
        ("POST", f"{app}/releases", {"env": "production"}),
        ("POST", f"{app}/releases", {}),  # staging by default
        ("POST", f"{app}/releases/v1.0.1/promote", {"to": "production"}),
        ("POST", f"{app}/envs/production/rollback", {}),
        ("POST", f"{app}/envs/production/down", {}),
        ("POST", f"{app}/releases/v1.0.1/approve", {"to": "test"}),  # approving is another scope
    ]:
        refused = is_problem(client.request(method, path, headers=ci, json=body), 403)
        assert "token:ci may not" in refused["detail"] and refused["hint"], refused
    # On test it gets past the scope check: this body is refused for what it says (pr 0), not for who
    # sent it, and nothing starts.
    assert client.post(f"{app}/envs/test/up", headers=ci, json={"pr": 0}).status_code == 422
    assert client.get("/api/v1/jobs", headers=ci).json() == []


def test_jobs_leave_no_file_of_the_apps_store_open(world: World) -> None:
    """A server audits jobs of many apps for weeks: each row's store is closed again."""
    import os

    def open_stores() -> int:
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir() if ".envplane" in os.path.realpath(fd))

    ci, app = world.auth("ci"), f"/api/v1/apps/{world.app}"
    # No scheduler: its first runs, at start, open the app's store while this counts.
    quiet = create_app({**world.environ, "ENVPLANE_SCHEDULER": "off"})
    with TestClient(quiet, raise_server_exceptions=False) as client:
        before = open_stores()
        for pr in range(901, 906):  # nothing runs there: each job ends at once, audited twice
            assert client.post(f"{app}/envs/test/down", headers=ci, json={"pr": pr}).status_code == 202
        assert quiet.state.envplane.jobs.wait(60)  # their audit rows too
        assert open_stores() <= before


def test_a_read_token_changes_nothing(client: TestClient, world: World) -> None:
    app = f"/api/v1/apps/{world.app}"
    for method, path, body in [("POST", f"{app}/envs/test/up", {"pr": 3}),
                               ("POST", f"{app}/releases", {"env": "staging"}),
                               ("POST", f"{app}/releases/v1.0.1/promote", {"to": "staging"}),
                               ("POST", f"{app}/envs/staging/rollback", {})]:
        is_problem(client.request(method, path, headers=world.auth("reader"), json=body), 403)


def test_errors_carry_the_cli_s_message_and_hint(client: TestClient, world: World) -> None:
    reader = world.auth("reader")
    unknown_app = is_problem(client.get("/api/v1/apps/nosuchapp/status", headers=reader), 404)
    assert "nosuchapp" in unknown_app["detail"]
    done = world.cli("status", "zzz")
    assert done.returncode == 2
    # An env the app does not have is not found (the CLI's words; the CLI exits 2).
    unknown_env = is_problem(client.get(f"/api/v1/apps/{world.app}/status?env=zzz", headers=reader), 404)
    assert f"error: {unknown_env['detail']}" in done.stderr and unknown_env["hint"] in done.stderr
    for path in (f"/api/v1/apps/{world.app}/envs/zzz/plan", f"/api/v1/apps/{world.app}/envs/zzz/rollback"):
        assert is_problem(client.get(path, headers=reader), 404)["detail"] == unknown_env["detail"]
    bad_version = is_problem(client.post(f"/api/v1/apps/{world.app}/releases/latest/promote",
                                         headers=world.auth("admin"), json={"to": "staging"}), 422)
    assert [p["field"] for p in bad_version["problems"]] == ["path.version"]
    pr_missing = is_problem(client.get(f"/api/v1/apps/{world.app}/envs/test/plan", headers=reader), 400)
    by_cli = world.cli("plan", "test")
    assert by_cli.returncode == 2 and pr_missing["detail"] in by_cli.stderr and pr_missing["hint"] in by_cli.stderr
    invalid = is_problem(client.post(f"/api/v1/apps/{world.app}/envs/test/up", headers=world.auth("ci"),
                                     json={"pr": "seven", "colour": "red"}), 422)
    assert {p["field"] for p in invalid["problems"]} == {"body.pr", "body.colour"}
    no_job = is_problem(client.get(f"/api/v1/jobs/{'f' * 32}", headers=reader), 404)
    assert no_job["hint"].startswith("GET /api/v1/jobs")


def test_reads_of_an_app_with_nothing_running(client: TestClient, world: World) -> None:
    reader, app = world.auth("reader"), f"/api/v1/apps/{world.app}"
    assert client.get(f"{app}/status", headers=reader).json() == []
    envs = {e["env"]: e for e in client.get(f"{app}/envs", headers=reader).json()}
    assert envs["test"]["example_instance"] == "pr-123" and "production" in envs
    planned = client.get(f"{app}/envs/test/plan?pr=4", headers=reader).json()
    assert planned["target"]["instance"] == "pr-4" and planned["steps"]
    assert planned == json.loads(world.cli("plan", "test", "--pr", "4", "--json").stdout)
    assert client.get(f"{app}/releases", headers=reader).json() == []
    no_release = is_problem(client.get(f"{app}/releases/v1.0.0/gates", headers=reader), 404)
    assert no_release["detail"] in world.cli("gates", "v1.0.0").stderr
    assert client.get(f"{app}/approvals", headers=reader).json() == []
    assert client.get(f"{app}/previews", headers=reader).json()["previews"] == []
    assert client.get(f"{app}/audit", headers=reader).json() == []  # and no store was made for it
    assert client.get(f"{app}/audit/verify", headers=reader).json()["ok"] is True
    assert not (world.app_dir / ".envplane" / "state.db").exists()


def test_an_up_runs_as_a_job_that_streams_its_steps_and_is_audited(client: TestClient, world: World) -> None:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    app = f"/api/v1/apps/{world.app}"
    try:
        started = client.post(f"{app}/envs/test/up", headers=world.auth("ci"), json={"pr": 7})
        assert started.status_code == 202, started.text
        job = started.json()
        assert started.headers["location"] == f"/api/v1/jobs/{job['id']}"
        assert (job["kind"], job["env"], job["instance"], job["by"]) == ("up", "test", "pr-7", "token:ci")
        with client.stream("GET", f"/api/v1/jobs/{job['id']}/events", headers=world.auth("reader")) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = list(sse(stream.iter_lines()))
        steps = [e for e in events if e["event"] in ("step_started", "step_finished")]
        assert {"start", "health"} <= {e["data"]["step"] for e in steps}
        assert [e["id"] for e in events[:-1]] == [str(n) for n in range(1, len(events))]
        end = events[-1]
        assert end["event"] == "end" and end["data"]["state"] == "ok", end
        assert end["data"]["result"]["instance"] == "pr-7" and end["data"]["result"]["urls"]
        # Read again after Last-Event-ID: only what came after it.
        with client.stream("GET", f"/api/v1/jobs/{job['id']}/events",
                           headers={**world.auth("reader"), "Last-Event-ID": str(len(events) - 2)}) as again:
            assert [e["event"] for e in sse(again.iter_lines())] == [events[-2]["event"], "end"]
        listed = client.get("/api/v1/jobs", headers=world.auth("reader")).json()
        assert [(j["id"], j["state"]) for j in listed] == [(job["id"], "ok")]
        # The API answers what `envplane status --json` says.
        shown = client.get(f"{app}/status?env=test", headers=world.auth("reader")).json()
        by_cli = json.loads(world.cli("status", "test", "--json").stdout)
        keys = ("env", "instance", "service", "container", "state", "version")
        assert [[s[k] for k in keys] for s in shown] == [[s[k] for k in keys] for s in by_cli]
        assert [s["instance"] for s in shown] == ["pr-7"]
        # The deploy is audited under the token, and so is the request.
        rows = client.get(f"{app}/audit", headers=world.auth("reader")).json()
        assert ("token:ci", "up", "pr-7", "ok") in [(r["actor"], r["action"], r["instance"], r["outcome"])
                                                    for r in rows]
        request = [r for r in rows if r["action"] == "api:up"]
        assert [(r["actor"], r["outcome"], r["detail"]["job"]) for r in request] == [
            ("token:ci", "started", job["id"]), ("token:ci", "ok", job["id"])]
        assert client.get(f"{app}/audit/verify", headers=world.auth("reader")).json()["ok"]

        # Its log: read:logs is needed; the last lines, then `end` when not followed.
        logs = f"{app}/envs/test/logs/web?pr=7&follow=false"
        is_problem(client.get(logs, headers=world.auth("reader")), 403)
        with client.stream("GET", logs, headers=world.auth("logs")) as stream:
            assert stream.status_code == 200
            said = list(sse(stream.iter_lines()))
        assert said[-1]["event"] == "end" and all(e["event"] == "log" for e in said[:-1])
        by_cli = world.cli("logs", "test", "web", "--pr", "7")
        assert [e["data"]["line"] for e in said[:-1]] == (by_cli.stdout + by_cli.stderr).splitlines()
        is_problem(client.get(f"{app}/envs/test/logs/nosuch?pr=7", headers=world.auth("logs")), 400)

        # Down, as a job; a second down has nothing to do.
        gone = client.post(f"{app}/envs/test/down", headers=world.auth("ci"), json={"pr": 7, "purge": True})
        assert gone.status_code == 202
        with client.stream("GET", f"/api/v1/jobs/{gone.json()['id']}/events", headers=world.auth("ci")) as stream:
            end = list(sse(stream.iter_lines()))[-1]
        assert end["data"]["state"] == "ok" and end["data"]["result"]["purged"] is True, end
        assert client.get(f"{app}/status", headers=world.auth("reader")).json() == []
        again = client.post(f"{app}/envs/test/down", headers=world.auth("ci"), json={"pr": 7}).json()
        assert client.get(f"/api/v1/jobs/{again['id']}", headers=world.auth("ci")).json()["state"] in (
            "running", "nothing")
    finally:
        world.cli("down", "test", "--pr", "7", "--purge")


def test_envplane_serve_runs_the_api_and_stops_on_sigterm(world: World) -> None:
    with serving(world) as served:
        base = served.base
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        assert "paths" in httpx.get(f"{base}/api/openapi.json").json()
        assert httpx.get(f"{base}/api/v1/apps/{world.app}/status").status_code == 401
        answer = httpx.get(f"{base}/api/v1/apps/{world.app}/status", headers=world.auth("reader"))
        assert answer.status_code == 200 and answer.json() == []


def test_serve_refuses_a_port_in_use(world: World) -> None:
    with serving(world) as served:
        port = served.base.rsplit(":", 1)[1]
        done = world.cli("serve", "--port", port, timeout=60)
    assert done.returncode != 0


def test_serve_stops_cleanly_on_sigterm(world: World, tmp_path: Path) -> None:
    import sys

    from tests.support import free_port_block

    port = free_port_block(1)
    process = subprocess.Popen([sys.executable, "-m", "envplane", "serve", "--port", str(port)],
                               env=world.environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    # uvicorn ends by the signal it was stopped with, once it has shut down: systemd counts
    # SIGTERM as a clean stop.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert f"http://127.0.0.1:{port}/" in output


def test_the_dashboard_and_mcp_are_parts_of_the_same_server(client: TestClient) -> None:
    assert client.get("/login").status_code == 200
    assert "<form" in client.get("/login").text
    refused = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401


def test_no_secret_value_of_the_app_reaches_an_api_client(tmp_path: Path) -> None:
    """An instance brought up by the CLI (the server never held its secrets) whose container
    prints its secret: the log stream, status and plan show the mask."""
    from tests.mcp_kit import leaky_app
    from tests.support import free_port_block

    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    folder = tmp_path / "leaky"
    folder.mkdir()
    name, value = leaky_app(folder, free_port_block(), {"DATA_PATH": ""})
    world = make_world(tmp_path, folder, name)
    try:
        up = world.cli("up", "test", "--pr", "6")
        assert up.returncode == 0, up.stderr
        with TestClient(create_app(world.environ), raise_server_exceptions=False) as client:
            app = f"/api/v1/apps/{name}"
            with client.stream("GET", f"{app}/envs/test/logs/web?pr=6&follow=false",
                               headers=world.auth("logs")) as stream:
                said = stream.read().decode()
            assert "starting with key=" in said and "***" in said
            answers = [said] + [client.get(path, headers=world.auth("admin")).text for path in (
                f"{app}/status", f"{app}/envs/test/plan?pr=6", f"{app}/envs", f"{app}/audit?limit=500")]
        for answer in answers:
            assert value not in answer
    finally:
        world.cli("down", "test", "--pr", "6", "--purge")
