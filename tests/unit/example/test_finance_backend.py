"""The example app's backend and frontend dev server, run as the local runtime runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "finance-report"

Start = Callable[..., str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture()
def start(tmp_path: Path) -> Iterator[Start]:
    """start(script, **env) runs a script of the example on a free port; returns its base URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def run(script: str, **env: str) -> str:
        port = free_port()
        log = (tmp_path / f"{Path(script).stem}-{port}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE / script)],
            env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **env},
            stdout=log, stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"{script} exited: {Path(log.name).read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{script} did not listen on {port}")

    yield run
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=5)


def test_health_reports_a_real_sqlite_query(start: Start, tmp_path: Path) -> None:
    url = start("backend/app.py", DATABASE_URL=f"sqlite:///{tmp_path}/db/finance.db", DEPLOY_ENV="staging",
                ENVPLANE_RELEASE="v1.2.3")

    status, health = call(f"{url}/api/health")

    assert status == 200
    assert health == {"status": "ok", "env": "staging", "release": "v1.2.3",
                      "database": {"ok": True, "kind": "sqlite", "reports": 0}}
    assert (tmp_path / "db" / "finance.db").is_file()


def test_reports_are_added_and_listed(start: Start, tmp_path: Path) -> None:
    url = start("backend/app.py", DATABASE_URL=f"sqlite:///{tmp_path}/finance.db")

    created = call(f"{url}/api/reports", {"title": "Q3 close", "amount": 1250.5})
    rejected = call(f"{url}/api/reports", {"title": "no amount"})

    assert created == (201, {"title": "Q3 close", "amount": 1250.5})
    assert rejected[0] == 400
    assert call(f"{url}/api/reports") == (200, [{"id": 1, "title": "Q3 close", "amount": 1250.5}])
    assert call(f"{url}/api/health")[1]["database"]["reports"] == 1


def test_unwritable_database_path_is_503_with_the_reason(start: Start, tmp_path: Path) -> None:
    # A parent that is a file stops even root (file modes would not): the app starts anyway.
    (tmp_path / "not-a-dir").write_text("")
    url = start("backend/app.py", DATABASE_URL=f"sqlite:///{tmp_path}/not-a-dir/finance.db")

    status, health = call(f"{url}/api/health")
    listing = call(f"{url}/api/reports")

    assert status == 503
    assert health["database"]["ok"] is False and health["database"]["kind"] == "sqlite"
    assert health["database"]["error"].startswith(("FileExistsError", "NotADirectoryError"))
    assert listing[0] == 503


def test_postgres_password_never_reaches_the_answer(start: Start) -> None:
    # Nothing listens on port 1: the connection fails before any driver detail matters.
    url = start("backend/app.py", DATABASE_URL="postgresql://finance:hunter2secret@127.0.0.1:1/finance")

    status, health = call(f"{url}/api/health")

    assert status == 503 and health["database"]["kind"] == "postgresql"
    assert "hunter2secret" not in json.dumps(health)


def test_backend_stops_promptly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(EXAMPLE / "backend" / "app.py")],
                            env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port),
                                 "DATABASE_URL": f"sqlite:///{tmp_path}/f.db"},
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert b'"event": "listening"' in proc.stdout.readline()
    proc.terminate()
    assert proc.wait(timeout=3) == 0


def test_frontend_serves_the_page_and_proxies_the_api(start: Start, tmp_path: Path) -> None:
    backend = start("backend/app.py", DATABASE_URL=f"sqlite:///{tmp_path}/finance.db", DEPLOY_ENV="local")
    frontend = start("frontend/serve.py", BACKEND_URL=backend)

    with urllib.request.urlopen(f"{frontend}/", timeout=5) as page:
        html = page.read().decode()
    health = call(f"{frontend}/api/health")
    added = call(f"{frontend}/api/reports", {"title": "via proxy", "amount": 3})

    assert "<title>Finance Report</title>" in html
    assert health == (200, {"status": "ok", "env": "local", "release": None,
                            "database": {"ok": True, "kind": "sqlite", "reports": 0}})
    assert added[0] == 201
    assert call(f"{frontend}/api/reports")[1][0]["title"] == "via proxy"


def test_frontend_says_502_when_the_backend_is_down(start: Start) -> None:
    frontend = start("frontend/serve.py", BACKEND_URL=f"http://127.0.0.1:{free_port()}")

    status, body = call(f"{frontend}/api/health")

    assert status == 502 and "backend unreachable" in body["error"]
