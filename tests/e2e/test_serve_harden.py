"""#14 hardening: `envplane serve` as an attacker meets it — each test pins a defect found
against a real `envplane serve` (tests/api_kit.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from envplane.server import web_session
from tests.api_kit import World, make_world, serving
from tests.support import docker_engine, ensure_busybox_image, need


def _finished(api: httpx.Client, job: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = api.get(f"/api/v1/jobs/{job}").json()
        if found["state"] != "running" or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def _needing_a_secret(tmp_path: Path) -> World:
    world = make_world(tmp_path)
    spec = world.app_dir / "envplane.yaml"
    spec.write_text(spec.read_text().replace("    health: /health.txt\n",
                                             "    health: /health.txt\n    secrets: [API_KEY]\n"))
    return world


def test_a_missing_secret_is_the_clients_problem_naming_the_key_and_the_command(tmp_path: Path) -> None:
    """A deploy whose service names a secret nobody set answered 502, as if a backend broke:
    it is a 409 naming the key and the CLI's hint, and no value."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    world = _needing_a_secret(tmp_path)
    with serving(world) as served:
        api = httpx.Client(base_url=served.base, headers=world.auth("admin"), timeout=60)
        started = api.post(f"/api/v1/apps/{world.app}/envs/test/up", json={"pr": 3})
        assert started.status_code == 202, started.text
        job = _finished(api, started.json()["id"])
    assert job["state"] == "failed", job
    problem = job["problem"]
    assert problem["status"] == 409 and problem["type"] == "urn:envplane:problem:secret-unset", problem
    assert problem["detail"] == "secret API_KEY of service web is not set for test pr-3"
    assert "envplane secrets set test API_KEY --service web --pr 3" in problem["hint"]


def _add_user(world: World, name: str, password: str) -> None:
    added = subprocess.run([sys.executable, "-m", "envplane", "users", "add", name], input=password + "\n",
                           text=True, capture_output=True, env=world.environ, cwd=world.app_dir)
    assert added.returncode == 0, added.stderr


def _try_login(base: str, user: str, password: str, client: str) -> int:
    """One login from `client` (behind the local reverse proxy, which says who in
    X-Forwarded-For); its status."""
    browser = httpx.Client(base_url=base, follow_redirects=False, timeout=30,
                           headers={"X-Forwarded-For": client})
    form = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
    assert form is not None
    return browser.post("/login", data={"user": user, "password": password, "csrf": form.group(1),
                                        "next": "/"}).status_code


def test_a_stranger_failing_a_users_password_does_not_lock_the_user_out(tmp_path: Path) -> None:
    """Five wrong passwords for a name locked that name for 15 minutes, whoever typed them:
    anyone could keep the owner out of the dashboard. Failures count per client and name."""
    world = make_world(tmp_path)
    _add_user(world, "alice", "alice-password-1")
    with serving(world) as served:
        for _ in range(web_session.MAX_FAILURES):
            assert _try_login(served.base, "alice", "guess", "203.0.113.7") == 401
        assert _try_login(served.base, "alice", "guess", "203.0.113.7") == 429  # the guesser waits
        assert _try_login(served.base, "alice", "alice-password-1", "203.0.113.7") == 429  # even when right
        assert _try_login(served.base, "alice", "alice-password-1", "198.51.100.2") == 303  # the owner not


def test_head_of_a_dashboard_page_answers_as_get_without_a_body(tmp_path: Path) -> None:
    """HEAD / and HEAD /login answered 405: link checkers and monitors saw a broken site."""
    world = make_world(tmp_path)
    _add_user(world, "alice", "alice-password-1")
    with serving(world) as served:
        anonymous = httpx.Client(base_url=served.base, follow_redirects=False, timeout=30)
        for path in ("/login", "/static/dashboard.css", "/"):
            got, head = anonymous.get(path), anonymous.head(path)
            assert head.status_code == got.status_code != 405, (path, head.status_code)
            assert head.content == b"" and (got.content or got.status_code == 303)
            assert head.headers.get("content-type") == got.headers.get("content-type"), path
            assert head.headers.get("location") == got.headers.get("location")
        browser = httpx.Client(base_url=served.base, follow_redirects=False, timeout=30)
        form = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
        assert form is not None
        signed = browser.post("/login", data={"user": "alice", "password": "alice-password-1",
                                              "csrf": form.group(1), "next": "/"})
        assert signed.status_code == 303
        for path in ("/", "/audit", "/jobs", f"/apps/{world.app}/releases"):
            head = browser.head(path)
            assert head.status_code == 200 and head.content == b"", (path, head.status_code)
            assert "default-src 'self'" in head.headers["content-security-policy"]
        assert "HEAD" in anonymous.request("PUT", "/login").headers["allow"]


def test_the_webhook_answers_a_stranger_the_same_for_every_app_name(tmp_path: Path) -> None:
    """An unregistered app answered 404 "app … is not registered" where a registered one said
    401 to the same forged request: anyone could list a server's apps. A request not signed
    with the server's secret gets the same answer whatever the name; GitHub's (signed) still
    hears why an app cannot take it."""
    from envplane.secret import Secret
    from envplane.webhook import signature
    from tests.support import busybox_repo

    secret = "harden-webhook-secret-0123456789"
    name = f"wh{uuid.uuid4().hex[:6]}"
    app, _ = busybox_repo(tmp_path, "apps/web", name)
    world = make_world(tmp_path, app, name, {"GITHUB_WEBHOOK_SECRET": secret})
    body = b'{"action": "opened"}'

    def post(app_name: str, headers: dict[str, str], content: bytes = body) -> tuple[int, Any]:
        answer = httpx.post(f"{served.base}/hooks/github/{app_name}", content=content, timeout=30,
                            headers={"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
                                     **headers})
        return answer.status_code, answer.json()

    forged = {"X-Hub-Signature-256": signature(Secret("not-the-secret"), body)}
    with serving(world) as served:
        for headers in (forged, {}):
            registered = post(world.app, headers)
            assert registered[0] == 401, registered
            for stranger in ("nosuchapp", "x" * 64, "Bad.Name"):
                assert post(stranger, headers) == registered, stranger
        signed = post("nosuchapp", {"X-Hub-Signature-256": signature(Secret(secret), body)})
        assert signed[0] == 404 and "nosuchapp" in signed[1]["error"], signed


def test_mcp_over_stdio_writes_only_the_protocol_on_stdout_and_each_log_line_once(tmp_path: Path) -> None:
    """stdout is the protocol's; stderr had every library's INFO chatter (each Alembic
    migration of a first deploy) from the SDK's root handler, beside envplane's own lines."""
    import json

    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    world = make_world(tmp_path)
    errors = tmp_path / "mcp.err"
    with open(errors, "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "envplane", "mcp"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=err, text=True,
                                   env={**world.environ, "ENVPLANE_TOKEN": world.tokens["admin"]})
        assert process.stdin is not None and process.stdout is not None
        said: list[str] = []

        def ask(number: int, method: str, params: dict[str, Any]) -> None:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps({"jsonrpc": "2.0", "id": number, "method": method,
                                            "params": params}) + "\n")
            process.stdin.flush()
            while True:
                line = process.stdout.readline()
                said.append(line)
                if not line or json.loads(line).get("id") == number:
                    return

        try:
            ask(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                  "clientInfo": {"name": "test", "version": "1"}})
            process.stdin.write('{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
            for number, (tool, arguments) in enumerate([("status", {"env": "nope"}), ("preview_up", {"pr": 3}),
                                                        ("preview_down", {"pr": 3})], 2):
                ask(number, "tools/call", {"name": tool, "arguments": arguments})
        finally:
            process.stdin.close()
            process.wait(60)
    assert all(json.loads(line)["jsonrpc"] == "2.0" for line in said if line), said  # only the protocol
    assert json.loads(said[-1])["result"]["isError"] is False, said[-1]
    lines = [line for line in errors.read_text().splitlines() if line.strip()]
    assert not [line for line in lines if "alembic" in line or "Running upgrade" in line], lines
    assert len(lines) == len(set(lines)), lines  # each line once


def test_a_token_for_one_app_may_not_deploy_or_approve_on_another(tmp_path: Path) -> None:
    """`deploy:GLOB` held on every app of the server: a CI token of one team could deploy
    another team's app. `deploy:APP/GLOB` holds on APP only (API, MCP and dashboard alike)."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    from envplane.server import apps, auth, home
    from tests.support import busybox_app, free_port_block

    world = make_world(tmp_path)
    other = f"ot{uuid.uuid4().hex[:6]}"
    store = home.open_server_store(world.environ)
    apps.add(store, busybox_app(tmp_path / "other", other, free_port_block()))
    _, raw = auth.create_token(store, "shop-ci", [f"deploy:{world.app}/test", f"approve:{world.app}/*"])
    mine = {"Authorization": f"Bearer {raw.reveal()}"}
    with serving(world) as served:
        api = httpx.Client(base_url=f"{served.base}/api/v1", headers=mine, timeout=60)
        for app in (world.app, other):
            refused = {path: api.post(f"/apps/{app}{path}", json=body) for path, body in (
                ("/envs/test/up", {"pr": 3, "ref": "no-such-ref"}), ("/previews", {"pr": 3, "ref": "no-such-ref"}),
                ("/envs/staging/up", {"ref": "no-such-ref"}),
                ("/releases/v1.0.0/approve", {"to": "production"}))}
            statuses = {path: answer.status_code for path, answer in refused.items()}
            if app == other:  # nothing on another app
                assert set(statuses.values()) == {403}, statuses
                assert f"of app {other}" in refused["/envs/test/up"].json()["detail"]
                assert f"deploy:{other}/test" in refused["/envs/test/up"].json()["hint"]
            else:  # its own app's test env: past the scope check (the ref is what is refused)
                assert statuses["/envs/test/up"] != 403 and statuses["/previews"] != 403, statuses
                assert statuses["/envs/staging/up"] == 403, statuses
                assert statuses["/releases/v1.0.0/approve"] != 403 or "approve" not in \
                    refused["/releases/v1.0.0/approve"].json()["detail"], refused["/releases/v1.0.0/approve"].text
        assert httpx.get(f"{served.base}/api/v1/jobs", headers=world.auth("admin")).json() == []

        async def preview(app: str) -> Any:
            http = create_mcp_http_client(headers=mine)
            async with http, Client(streamable_http_client(f"{served.base}/mcp", http_client=http)) as client:
                return await client.call_tool("preview_up", {"app": app, "pr": 3})

        import anyio

        answer = anyio.run(preview, other)
        assert answer.is_error and f"may not deploy on env test of app {other}" in answer.content[0].text
