"""The process runtime (env local): dev commands as supervised processes, no Docker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVER = """\
import http.server, os, sys
count_file = os.path.join(os.environ["DATA_PATH"], "starts")
starts = int(open(count_file).read()) + 1 if os.path.exists(count_file) else 1
open(count_file, "w").write(str(starts))
print(f"start {starts} on {os.environ['PORT']} env {os.environ['DEPLOY_ENV']}", flush=True)
if starts == 1:
    sys.exit(3)  # crash once: the supervisor must restart it
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ['DEPLOY_ENV']} {starts}".encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_app(folder: Path, port: int) -> None:
    """App `proc`: one service, SERVER as its dev command, published on `port`."""
    (folder / "server.py").write_text(SERVER)
    (folder / "compose.yaml").write_text(f"services:\n  api:\n    image: python\n    ports: ['{port}:8000']\n")
    (folder / "envplane.yaml").write_text(
        "app: proc\ndomain: example.com\ncompose: compose.yaml\n"
        f"services:\n  api:\n    public: 8000\n    health: /\n    dev: {sys.executable} server.py\n"
    )


def test_up_local_runs_restarts_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc = subprocess.Popen([sys.executable, "-m", "envplane", "up", "local", "--timeout", "30"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        deadline = time.monotonic() + 30
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.2)
        assert body == "local 2", body  # the first start crashed; the restart serves
        assert proc.stderr is not None
        seen = ""
        while "is up" not in seen:  # wait until envplane itself has seen it healthy
            line = proc.stderr.readline()
            assert line, "envplane ended before it reported the app up"
            seen += line
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "api |" in stdout and "start 2 on" in stdout
    assert "exited with code 3; restarting" in stdout
    assert "stopped" in stderr
    with socket.socket() as s:  # nothing listens any more: the child was stopped too
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_ctrl_c_just_after_up_ends_the_run_cleanly(tmp_path: Path) -> None:
    """Ctrl-C at the moment env local is reported up (the test above sends it right then)
    ends the run as a person means it: processes stopped, no KeyboardInterrupt escaping."""
    import threading

    from envplane import actions
    from envplane.events import Note
    from envplane.service import instances

    port = free_port()
    write_app(tmp_path, port)
    stop = threading.Event()

    def report(event: object) -> None:
        if isinstance(event, Note) and event.message.endswith(" is up"):
            stop.set()  # what the CLI's signal handler does before it raises
            raise KeyboardInterrupt

    project = actions.open_project(tmp_path / "envplane.yaml", os.environ)
    try:
        target = instances.run_local(project, "local", stop, timeout=30, report=report)
    except KeyboardInterrupt:
        raise AssertionError("Ctrl-C after the app was up escaped the run (the CLI exits 130)") from None
    assert target.id == "local"
    with socket.socket() as s:  # the child was stopped
        assert s.connect_ex(("127.0.0.1", port)) != 0
