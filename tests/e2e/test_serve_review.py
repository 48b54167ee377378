"""#14 review: `envplane serve` and its API as an attacker and a careless user meet them —
each test pins a defect found against a real `envplane serve`."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.api_kit import make_world, serving, sse
from tests.support import (
    busybox_app,
    cli,
    commit_file,
    docker_engine,
    ensure_busybox_image,
    free_port_block,
    git,
    need,
)


def _home(tmp_path: Path) -> dict[str, str]:
    environ = {**os.environ, "ENVPLANE_SERVER_HOME": str(tmp_path / "home"), "ENVPLANE_SCHEDULER": "off",
               "ENVPLANE_AUDIT_KEY": "c2VydmUtcmV2aWV3LWF1ZGl0LWtleS0zMi1ieXRlcyE="}
    environ.pop("ENVPLANE_STATE_URL", None)
    return environ


def test_serve_on_a_taken_port_says_so_in_one_line_and_claims_nothing(tmp_path: Path) -> None:
    port = free_port_block(1)
    with socket.create_server(("127.0.0.1", port)):
        done = cli("serve", "--port", str(port), cwd=tmp_path, env=_home(tmp_path), timeout=60)
    assert done.returncode == 1, done.stderr
    assert f"cannot serve on 127.0.0.1:{port}" in done.stderr and "in use" in done.stderr
    assert "hint: pick another --port" in done.stderr
    # It never said it served there, and uvicorn's own log line is not what the user reads.
    assert "envplane serve: http://" not in done.stderr and "ERROR:" not in done.stderr


def test_serve_on_a_store_that_is_not_a_database_names_the_file(tmp_path: Path) -> None:
    environ = _home(tmp_path)
    (tmp_path / "home").mkdir(mode=0o700)
    (tmp_path / "home" / "server.db").write_text("not a database\n")
    done = cli("serve", "--port", str(free_port_block(1)), cwd=tmp_path, env=environ, timeout=60)
    assert done.returncode == 1, done.stderr
    assert str(tmp_path / "home" / "server.db") in done.stderr and "not a database" in done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "home" / "server.db").read_text() == "not a database\n"  # left as it was


def test_a_huge_body_is_refused_before_it_is_read_token_or_not(tmp_path: Path) -> None:
    """FastAPI reads a request's body whole before it checks the token: 300 MiB posted with
    no token took the server to 1.3 GB of memory before it answered 401."""
    world = make_world(tmp_path)
    with serving(world) as served:
        api = f"{served.base}/api/v1/apps/{world.app}/releases"

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, as a streaming client sends
            yield b'{"env": "'
            for _ in range(192):  # 12 MiB: still sending when refused
                yield b"a" * 65536
            yield b'"}'

        for headers in ({}, world.auth("admin")):
            declared = httpx.post(api, content=b"x" * (4 << 20), headers=headers, timeout=60)
            assert declared.status_code == 413, declared.text
            assert declared.headers["content-type"] == "application/problem+json"
            assert "larger than" in declared.json()["detail"]
            streamed = httpx.post(api, content=chunks(), headers={**headers, "content-type": "application/json"},
                                  timeout=60)
            assert streamed.status_code == 413, streamed.text
        # An ordinary request still goes through; the webhook keeps its own bound (its 413).
        assert httpx.post(api, json={"env": "nope!"}, headers=world.auth("admin")).status_code == 422
        assert httpx.get(f"{served.base}/api/v1/apps", headers=world.auth("reader")).status_code == 200


def test_a_ref_the_servers_checkout_is_not_at_is_refused_never_deployed_under_its_name(tmp_path: Path) -> None:
    """CI's workflows send `--ref HEAD_SHA` (remote preview up, remote release): the server
    deployed its own checkout's files and recorded them as that commit — a PR's preview ran
    main's code labelled with the PR's sha, and a release recorded a commit it was not built from."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    world = make_world(tmp_path)
    repo = world.app_dir
    git("init", "-q", "-b", "main", cwd=repo)
    main_sha = commit_file(repo, "www/index.html", "main\n", "main")
    git("checkout", "-q", "-b", "feature", cwd=repo)
    feature_sha = commit_file(repo, "www/index.html", "feature\n", "feature")
    git("checkout", "-q", "main", cwd=repo)  # the server's checkout: main
    with serving(world) as served:
        api = httpx.Client(base_url=f"{served.base}/api/v1/apps/{world.app}", headers=world.auth("admin"),
                           timeout=60)
        for path, body in (("/previews", {"pr": 4, "ref": "feature"}),
                           ("/envs/test/up", {"pr": 4, "ref": feature_sha}),
                           ("/releases", {"env": "staging", "ref": "feature"})):
            refused = api.post(path, json=body)
            assert refused.status_code == 400, (path, body, refused.text)
            assert "checkout" in refused.json()["detail"] and main_sha[:12] in refused.json()["detail"]
        # A preview or a release of another commit (a full sha) is fetched from the checkout's
        # remote into a worktree of the instance's own (tests/integration/test_preview_of_a_commit.py,
        # test_release_of_a_commit.py): this checkout has no remote, so it is refused before any job.
        for sha in (feature_sha, "0" * 40):
            for path, body in (("/previews", {"pr": 4, "ref": sha}), ("/releases", {"env": "staging", "ref": sha})):
                refused = api.post(path, json=body)
                assert refused.status_code == 400 and "no remote 'origin'" in refused.json()["detail"], refused.text
        assert httpx.get(f"{served.base}/api/v1/jobs", headers=world.auth("admin")).json() == []
        assert api.get("/previews").json()["previews"] == []
        # The checkout's own commit is what it deploys: accepted, recorded, and served.
        try:
            started = api.post("/previews", json={"pr": 4, "ref": main_sha})
            assert started.status_code == 202, started.text
            job = started.json()["id"]
            with api.stream("GET", f"{served.base}/api/v1/jobs/{job}/events", timeout=300) as events:
                assert [e for e in sse(events.iter_lines()) if e["event"] == "end"]
            assert api.get(f"{served.base}/api/v1/jobs/{job}").json()["state"] == "ok"
            assert api.get("/previews").json()["previews"][0]["ref"] == main_sha
        finally:
            world.cli("preview", "down", "--pr", "4")


def _raw(base: str, method: str, path: str, headers: dict[str, bytes], body: bytes = b"") -> int:
    """A request with header bytes as a client may send them (latin-1, e.g. b'\\xb2', '²')."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest(method, path)
    for name, value in {**headers, "Content-Length": str(len(body)).encode()}.items():
        connection.putheader(name, value)
    connection.endheaders(body)
    status = connection.getresponse().status
    connection.close()
    return status


def test_numbers_in_headers_and_cookies_that_are_not_plain_digits_are_no_500(tmp_path: Path) -> None:
    """str.isdigit() holds for '²' and for 5000 digits, which int() refuses: a Last-Event-ID
    or a login form's cookie like that was a 500 with a traceback in the server's log."""
    world = make_world(tmp_path)
    with serving(world) as served:
        token = world.auth("admin")["Authorization"].encode()
        started = httpx.post(f"{served.base}/api/v1/apps/{world.app}/previews/gc", json={"dry_run": True},
                             headers=world.auth("admin"))
        assert started.status_code == 202, started.text
        for last in (b"\xb2", b"9" * 5000):
            status = _raw(served.base, "GET", f"/api/v1/jobs/{started.json()['id']}/events",
                          {"Authorization": token, "Last-Event-ID": last})
            assert status == 200  # read as no number: the events from the first
        for issued in (b"\xb2", b"9" * 5000):
            status = _raw(served.base, "POST", "/login", {
                "Cookie": b"envplane_login=abc." + issued, "Content-Type": b"application/x-www-form-urlencoded"},
                b"user=a&password=b&csrf=abc")
            assert status == 403  # the login form expired or was not ours
        assert "Traceback" not in served.log.read_text()


def _login(base: str, user: str, password: str) -> httpx.Client:
    browser = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    form = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
    assert form is not None
    signed = browser.post("/login", data={"user": user, "password": password, "csrf": form.group(1), "next": "/"})
    assert signed.status_code == 303 and signed.headers["location"] == "/", signed.text
    return browser


def test_a_new_password_ends_the_dashboard_sessions_of_the_old_one(tmp_path: Path) -> None:
    """`users passwd` is what an admin runs when a password leaked: a session opened with the
    old password went on working (and so did one of a user removed and added again)."""
    world = make_world(tmp_path)
    for name in ("bob", "eve"):
        added = subprocess.run([sys.executable, "-m", "envplane", "users", "add", name], input="old-password-1\n",
                               text=True, capture_output=True, env=world.environ, cwd=tmp_path)
        assert added.returncode == 0, added.stderr
    with serving(world) as served:
        bob, eve = _login(served.base, "bob", "old-password-1"), _login(served.base, "eve", "old-password-1")
        assert bob.get("/").status_code == 200 and eve.get("/").status_code == 200
        changed = subprocess.run([sys.executable, "-m", "envplane", "users", "passwd", "bob"],
                                 input="new-password-2\n", text=True, capture_output=True, env=world.environ,
                                 cwd=tmp_path)
        assert changed.returncode == 0, changed.stderr
        assert bob.get("/").status_code == 303  # back to the login page
        assert bob.get(f"/api/v1/apps/{world.app}/status").status_code == 401
        assert eve.get("/").status_code == 200  # nobody else's session ends
        for args in (["users", "remove", "eve"], ["users", "add", "eve"]):
            again = subprocess.run([sys.executable, "-m", "envplane", *args], input="old-password-1\n",
                                   text=True, capture_output=True, env=world.environ, cwd=tmp_path)
            assert again.returncode == 0, again.stderr
        assert eve.get("/").status_code == 303
        assert _login(served.base, "bob", "new-password-2").get("/").status_code == 200


def test_no_page_of_the_server_runs_a_script_from_another_host(tmp_path: Path) -> None:
    """FastAPI's /api/docs (no token needed) loaded Swagger UI's script from a CDN, unpinned,
    on the dashboard's origin: that script could read a signed-in user's pages (their CSRF
    token) and approve or promote as them. The API is described by /api/openapi.json."""
    world = make_world(tmp_path)
    with serving(world) as served:
        for path in ("/api/docs", "/api/docs/oauth2-redirect", "/api/redoc", "/docs", "/redoc"):
            answer = httpx.get(served.base + path)
            assert answer.status_code == 404, path
            assert not re.search(r"""(src|href)=["']?(https?:)?//""", answer.text), path
        assert httpx.get(served.base + "/api/openapi.json").status_code == 200


def test_a_server_killed_mid_job_leaves_who_started_it_in_the_audit_log_and_claims_no_success(
        tmp_path: Path) -> None:
    """The API recorded an operation in the app's audit log only when its job ended: a server
    killed (OOM, power) while a preview came up left containers and a database behind and no
    row saying which token started them."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"rv{uuid.uuid4().hex[:6]}"
    app_dir = busybox_app(tmp_path / "app", name, free_port_block())
    spec = app_dir / "envplane.yaml"
    spec.write_text(spec.read_text().replace("health: /health.txt", "health: /never.txt"))  # never healthy
    world = make_world(tmp_path, app_dir, name)
    port = free_port_block(1)
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([sys.executable, "-m", "envplane", "serve", "--port", str(port)], env=world.environ,
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        api = httpx.Client(base_url=f"{base}/api/v1", headers=world.auth("ci"), timeout=30)
        started = api.post(f"/apps/{name}/previews", json={"pr": 3, "timeout": 600})
        assert started.status_code == 202, started.text
        job = started.json()["id"]
        while not any(e.get("step") == "health" for e in _events_so_far(api, job)):
            assert time.monotonic() < deadline + 240, "the preview never reached its health step"
            time.sleep(0.5)
        server.kill()  # SIGKILL: no lifespan, no job end
        server.wait(30)
        rows = json.loads(world.cli("audit", "log", "--limit", "200", "--json").stdout)
        mine = [r for r in rows if r["instance"] == "pr-3"]
        assert [(r["actor"], r["action"], r["outcome"]) for r in mine if r["action"].startswith("api:")] == [
            ("token:ci", "api:preview-up", "started")]
        assert not [r for r in mine if r["outcome"] == "ok"]
        with serving(world) as served:  # the new server: no job of the old one says it succeeded
            jobs = httpx.get(f"{served.base}/api/v1/jobs", headers=world.auth("reader")).json()
            assert not [j for j in jobs if j["state"] == "ok"]
            assert json.loads(world.cli("status", "test", "--json").stdout)[0]["last_deploy"] != "ok"
    finally:
        if server.poll() is None:
            server.kill()
        log.close()
        world.cli("preview", "down", "--pr", "3")


def _events_so_far(api: httpx.Client, job: str) -> list[dict[str, Any]]:
    """The job's events up to now (the stream is read until the server has sent what it has)."""
    found: list[dict[str, Any]] = []
    count = api.get(f"/jobs/{job}").json()["events"]
    if count == 0:
        return found
    with api.stream("GET", f"/jobs/{job}/events") as stream:
        for event in sse(stream.iter_lines()):
            found.append(event["data"])
            if len(found) >= count:
                break
    return found
