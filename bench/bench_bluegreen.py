"""Blue-green switches of the example app under load. Prints figures; asserts nothing.

Releases two versions, then switches production between them N times (promote, then
rollbacks) while threads send requests through the proxy back to back (a new connection
each), and prints:
- the switch time (the marker files' overlap), median and max;
- each deploy's wall time (new colour up and healthy, switch, drain, old colour stopped);
- requests sent and lost (the aim is 0 lost);
- for comparison, the same load through Caddy config changes (what a route switch costs).

Needs what the e2e tests need (scripts/services/*.sh, ENVPLANE_TEST_* exported). The
load leaves tens of thousands of connections in TIME_WAIT for a minute afterwards.
Usage: .venv/bin/python bench/bench_bluegreen.py [--switches N] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envplane.backends.routing.caddy import CaddyAdmin, instance_id
from envplane.release.bluegreen import SWITCH_OVERLAP
from tests.release_kit import Load, ReleaseApp, make, remove

RELOADS = 20


def reloads(app: ReleaseApp, base: str, threads: int) -> str:
    """Why the switch is a marker file: the same load through Caddy config changes."""
    caddy = CaddyAdmin(f"http://127.0.0.1:{app.admin}")
    with Load(f"{base}/", app.production_host, threads=threads) as pages:
        pages.wait_for(20)
        for i in range(RELOADS):  # a route for a host nobody asks for: a real reload each time
            caddy.put_instance({"@id": instance_id("_bench", "reload"),
                                "match": [{"host": [f"reload-{i}.invalid"]}],
                                "handle": [{"handler": "static_response"}]})
            time.sleep(0.2)
        total = pages.ok + pages.failed
    caddy.remove_instance("_bench", "reload")
    return (f"for comparison, {RELOADS} Caddy config changes under the same load: "
            f"{total} requests, lost {pages.failed}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--switches", type=int, default=6)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envplane-bench-bg-") as tmp:
        app = make(Path(tmp))
        try:
            app.ok("release", "staging")
            app.ok("approve", "v1.0.45", "--to", "production", user="bob")
            app.ok("promote", "v1.0.45", "--to", "production")
            app.commit("the next version")
            app.ok("release", "staging")
            app.ok("approve", "v1.0.46", "--to", "production", user="bob")
            switches, deploys = [], []
            base = f"http://127.0.0.1:{app.listen}"
            with Load(f"{base}/api/health", app.production_host, threads=2) as load, \
                    Load(f"{base}/", app.production_host, threads=args.threads) as pages:
                load.wait_for(20)
                started = time.monotonic()
                for i in range(args.switches):
                    began = time.perf_counter()
                    if i == 0:
                        done = app.json("promote", "v1.0.46", "--to", "production")["deployed"]
                    else:
                        done = app.json("rollback", "production")
                    deploys.append(time.perf_counter() - began)
                    switches.append(done["switch_seconds"] * 1000)
                seconds = time.monotonic() - started
            total = load.ok + load.failed + pages.ok + pages.failed
            lost = load.failed + pages.failed
            print(f"blue-green switch (marker files, {SWITCH_OVERLAP * 1000:.0f} ms overlap): median "
                  f"{statistics.median(switches):.1f} ms, max {max(switches):.1f} ms, n={len(switches)}")
            print(f"blue-green deploy (up, healthy, switch, drain 1 s, stop): median "
                  f"{statistics.median(deploys):.1f} s, max {max(deploys):.1f} s")
            print(f"requests through the proxy: {total} in {seconds:.0f} s ({total / seconds:.0f}/s), "
                  f"lost {lost}" + (f" {dict(load.errors + pages.errors)}" if lost else ""))
            print(f"/api/health answered by: {dict(load.releases)}")
            print(reloads(app, base, args.threads))
        finally:
            remove(app)


if __name__ == "__main__":
    main()
