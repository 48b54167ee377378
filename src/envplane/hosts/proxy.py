"""The proxy of a remote host: Caddy in a container there, driven through an SSH tunnel.

One proxy per host that serves public envs, as Kamal runs kamal-proxy on each server:
the container `envplane-proxy` (host network, restarted by Docker) serves HTTP on the
host's address (`hosts.<group>.proxy`, default 0.0.0.0:80); its admin API listens on the
host's loopback only and is reached through an SSH tunnel, never over the network. Routes
are the same objects as on this machine (backends/routing/caddy.py), dialling the host's
own published ports, and each host's routes are recorded apart
($ENVPLANE_HOME/proxy/hosts/<host>/routes.db), so `proxy up` of a host restores its own.
Blue-green live markers are files on the host, mounted into the container, switched with
one `docker exec`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envplane.backends.routing.caddy import CaddyAdmin, base_config
from envplane.backends.routing.proxy import HostProxy
from envplane.errors import BackendError
from envplane.hosts.connect import docker_env, home, tunnel
from envplane.hosts.engine import Engine
from envplane.run import run

CONTAINER = "envplane-proxy"
LABEL = "envplane.proxy"
LIVE_ROOT = "/var/lib/envplane/proxy/live"
ADMIN_PORT = 2019  # on the host's loopback
DEFAULT_LISTEN = "0.0.0.0:80"
DEFAULT_IMAGE = "caddy:2"
_tunnels = contextlib.ExitStack()
atexit.register(_tunnels.close)


def proxy_image() -> str:
    """The image the proxy runs: Caddy with a shell (the official `caddy:2` has one)."""
    return os.environ.get("ENVPLANE_PROXY_IMAGE") or DEFAULT_IMAGE


def record_folder(engine: Engine) -> Path:
    return home() / "proxy" / "hosts" / re.sub(r"[^A-Za-z0-9.-]+", "_", engine.key)


class TunnelledAdmin(CaddyAdmin):
    """Caddy's admin API on the host's loopback, through a tunnel opened on first use."""

    def __init__(self, engine: Engine) -> None:
        if engine.kind != "ssh":
            raise BackendError(f"{engine.describe()}: a proxy on a tcp:// host is not driven by envplane "
                               "(its admin API would need a network port)",
                               "reach the host with ssh:// in hosts:, or route with the Traefik labels "
                               "envplane renders")
        super().__init__("http://127.0.0.1:0")
        self.host_header = f"127.0.0.1:{ADMIN_PORT}"
        self.engine = engine
        self._open = False

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        if not self._open:
            near = _tunnels.enter_context(tunnel(self.engine, [("127.0.0.1", ADMIN_PORT)]))
            host, port = near[("127.0.0.1", ADMIN_PORT)]
            self.admin = f"http://{host}:{port}"
            self._open = True
        return super()._call(method, path, body)


class RemoteMarkers:
    """Live markers on the host, in the folder the proxy container mounts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def live_dir(self, app: str, instance: str) -> str:
        return f"{LIVE_ROOT}/{app}/{instance}"

    def _exec(self, script: str, *args: str, check: bool = True) -> None:
        # Values go in as arguments ($0, $1, …), never into the script.
        run(["docker", "exec", CONTAINER, "sh", "-c", script, *args], env=docker_env(self.engine),
            check=check, what=f"switch a live marker on {self.engine.describe()}")

    def switch(self, app: str, instance: str, colour: str, other: str, overlap: float) -> None:
        self._exec('mkdir -p "$0" && touch "$0/$1" && if [ -e "$0/$2" ]; then sleep "$3"; rm -f "$0/$2"; fi',
                   self.live_dir(app, instance), colour, other, f"{overlap:g}")

    def restore(self, app: str, instance: str, colour: str) -> None:
        self._exec('[ -n "$(ls -A "$0" 2>/dev/null)" ] || { mkdir -p "$0" && touch "$0/$1"; }',
                   self.live_dir(app, instance), colour, check=False)

    def drop(self, app: str, instance: str) -> None:
        self._exec('rm -rf "$0"', self.live_dir(app, instance), check=False)


def start(engine: Engine, listen: str, client: CaddyAdmin, routes: Sequence[dict[str, Any]],
          wait: float = 30.0) -> None:
    """(Re)start the proxy container on the host, then load its whole config at once."""
    from envplane.hosts.images import ensure_image

    env = docker_env(engine)
    image = proxy_image()
    ensure_image(engine, image)
    run(["docker", "rm", "--force", CONTAINER], env=env, check=False, what="remove a stopped proxy")
    run(["docker", "run", "--detach", "--name", CONTAINER, "--label", f"{LABEL}=1", "--network", "host",
         "--restart", "unless-stopped", "--pull", "never", "--volume", f"{LIVE_ROOT}:{LIVE_ROOT}",
         image, "caddy", "run", "--resume"], env=env, what=f"start the proxy on {engine.describe()}")
    deadline = time.monotonic() + wait
    while not client.answers():
        if time.monotonic() > deadline:
            logs = run(["docker", "logs", "--tail", "5", CONTAINER], env=env, check=False).stderr
            raise BackendError(f"the proxy on {engine.describe()} did not answer: {logs.strip()[-300:]}")
        time.sleep(0.1)
    config = base_config(listen, f"127.0.0.1:{ADMIN_PORT}", routes)
    # Kept in the container (--resume): a host that reboots serves its routes again at once.
    config["admin"]["config"]["persist"] = True
    client._call("POST", "/load", config)


def remote_proxy(engine: Engine) -> HostProxy:
    admin = TunnelledAdmin(engine)
    return HostProxy(
        caddy=admin,
        folder=record_folder(engine),
        start=lambda listen, client, routes, folder: start(engine, listen, client, routes),
        markers=RemoteMarkers(engine),
        default_listen=lambda folder: engine.proxy_listen or DEFAULT_LISTEN,
    )
