"""`envplane remote ...` (#14), the client CI runners use, at the edges of its protocol:
a job's event stream that drops half-way is resumed from the last event (Last-Event-ID), a
job's problem becomes the CLI's message, hint and exit code, and the token never leaves for
a host a redirect names.

The server here is a stand-in, named as such: a plain HTTP server that speaks the job
protocol of server/api.py (POST answers a job; GET /api/v1/jobs/{id}/events streams its
events as Server-Sent Events and ends with `end`), because a real server cannot be made to
drop a stream on cue. tests/integration/test_remote_serve.py runs the client against
`envplane serve` itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ep_test_token_0123456789abcdef"
JOB = "0" * 31 + "1"


class StandIn(BaseHTTPRequestHandler):
    """Answers as the envplane server's API would; `script` says how the job ends."""

    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any], kind: str = "application/json") -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _authorised(self) -> bool:
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization"),
                                 self.headers.get("Last-Event-ID")))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, {"status": 401, "title": "Unauthorized", "detail": "no valid token"},
                       "application/problem+json")
            return False
        return True

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        self.server.bodies.append(body)
        if not self._authorised():
            return
        script = self.server.script
        if script == "redirect":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.elsewhere}/api/v1/apps/shop/previews")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if script == "bad-input":
            self._send(422, {"status": 422, "title": "Unprocessable", "detail": "--pr must be a number",
                             "hint": "give the PR number"}, "application/problem+json")
            return
        self._send(202, {"id": JOB, "kind": "preview-up", "app": "shop", "state": "running"})

    def do_GET(self) -> None:
        if not self._authorised():
            return
        after = int(self.headers.get("Last-Event-ID") or 0)
        events = [{"seq": 1, "type": "step_started", "step": "start", "description": "start web"},
                  {"seq": 2, "type": "step_finished", "step": "start", "description": "start web", "state": "ok",
                   "seconds": 1.5},
                  {"seq": 3, "type": "note", "message": "shop pr-7 is at https://shop-pr-7.example.com"}]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for event in events[after:]:
            self.wfile.write(f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            self.wfile.write(b": keep-alive\n\n")
            if event["seq"] == 2 and after == 0:
                return  # the connection drops after event 2, before the job ends
        if self.server.script == "fails":
            end = {"id": JOB, "state": "failed", "problem": {"status": 502, "detail": "no Docker engine answers",
                                                              "hint": "start dockerd"}}
        else:
            end = {"id": JOB, "state": "ok", "result": {"instance": "pr-7", "urls": ["https://shop-pr-7.example.com"]}}
        self.wfile.write(f"event: end\ndata: {json.dumps(end)}\n\n".encode())


def _serve(script: str = "ok") -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    server.script, server.seen, server.bodies, server.elsewhere = script, [], [], 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def stand_in() -> Iterator[ThreadingHTTPServer]:
    server = _serve()
    yield server
    server.shutdown()


def remote(server: ThreadingHTTPServer, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ENVPLANE_TOKEN", "ENVPLANE_SERVER")}
    env.update(PYTHONPATH=str(ROOT / "src"), COLUMNS="200", ENVPLANE_SERVER=f"http://127.0.0.1:{server.server_port}")
    if token is not None:
        env["ENVPLANE_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "envplane", "remote", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_a_dropped_stream_is_resumed_from_the_last_event(stand_in: ThreadingHTTPServer) -> None:
    done = remote(stand_in, "preview", "up", "--app", "shop", "--pr", "7", "--ref", "a" * 40)
    assert done.returncode == 0, done.stderr
    assert "shop pr-7 is up" in done.stdout
    assert "✓ start web 1.5s" in done.stderr and "https://shop-pr-7.example.com" in done.stderr
    assert done.stderr.count("start web") == 1  # no event twice after the resume
    assert stand_in.bodies == [{"pr": 7, "ref": "a" * 40}]  # type: ignore[attr-defined]
    streams = [s for s in stand_in.seen if s[1].endswith("/events")]  # type: ignore[attr-defined]
    assert [s[3] for s in streams] == [None, "2"]


def test_json_prints_the_jobs_result(stand_in: ThreadingHTTPServer) -> None:
    done = remote(stand_in, "preview", "up", "--app", "shop", "--pr", "7", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"instance": "pr-7", "urls": ["https://shop-pr-7.example.com"]}


def test_a_failed_job_exits_1_with_the_servers_message_and_hint() -> None:
    server = _serve("fails")
    try:
        done = remote(server, "release", "staging", "--app", "shop")
    finally:
        server.shutdown()
    assert done.returncode == 1
    assert "no Docker engine answers" in done.stderr and "start dockerd" in done.stderr


def test_bad_input_is_exit_2_and_a_bad_token_exit_1_with_a_hint() -> None:
    server = _serve("bad-input")
    try:
        bad = remote(server, "promote", "v1.0.45", "--app", "shop")
        refused = remote(server, "promote", "v1.0.45", "--app", "shop", token="wrong")
        unset = remote(server, "promote", "v1.0.45", "--app", "shop", token=None)
    finally:
        server.shutdown()
    assert bad.returncode == 2 and "--pr must be a number" in bad.stderr
    assert refused.returncode == 1 and "no valid token" in refused.stderr and "ENVPLANE_TOKEN" in refused.stderr
    assert unset.returncode == 2 and "ENVPLANE_TOKEN is not set" in unset.stderr
    assert "wrong" not in refused.stderr


def test_a_redirect_is_not_followed_so_the_token_stays_home() -> None:
    server, elsewhere = _serve("redirect"), _serve()
    server.elsewhere = elsewhere.server_port  # type: ignore[attr-defined]
    try:
        done = remote(server, "preview", "up", "--app", "shop", "--pr", "7")
    finally:
        server.shutdown()
        elsewhere.shutdown()
    assert done.returncode == 1
    assert "redirects to" in done.stderr and "not followed" in done.stderr
    assert elsewhere.seen == []  # type: ignore[attr-defined]
    assert TOKEN not in done.stderr + done.stdout
