"""Deploying to a remote host over SSH, against the same deploy here. Prints figures; asserts nothing.

1. `envplane preview up --pr N` of the example to healthy: on this machine's engine, and on
   a test host over SSH (`hosts: server: ssh://…`), each followed by `down --purge`
   (untimed). The first remote deploy also sends the images (reported apart); the timed
   runs find them there. Ratio remote ÷ local of the medians.
2. Images to a host without a registry: a first release to staging on the host, then a
   second release whose commit changed one file of the backend (one layer): bytes sent
   against the whole image (`docker save`), as the audit log records them.

The test host is one of scripts/hosts.sh (a network namespace with its own sshd and
Docker engine on this machine), so SSH adds its protocol and process costs but no
network latency: a VPS adds its round trips to every docker call.

Usage: .venv/bin/python bench/bench_remote.py [--runs N]   (root; needs the test services)
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

from envplane.hosts.images import human
from tests.hosts_kit import App, HostSet, example_app, host_entry, host_set
from tests.release_kit import free_port, git, require_services
from tests.support import free_port_block


def timed(app: App, *args: str) -> float:
    start = time.perf_counter()
    app.ok(*args)
    return time.perf_counter() - start


def deploys(local: App, remote: App, runs: int) -> None:
    first = timed(remote, "preview", "up", "--pr", "1")
    remote.ok("down", "test", "--pr", "1", "--purge")
    print(f"first preview up on the test host (images sent over SSH): {first:.1f} s", flush=True)
    here: list[float] = []
    there: list[float] = []
    for n in range(runs):
        here.append(timed(local, "preview", "up", "--pr", "1"))
        local.ok("down", "test", "--pr", "1", "--purge")
        there.append(timed(remote, "preview", "up", "--pr", "1"))
        remote.ok("down", "test", "--pr", "1", "--purge")
        print(f"run {n + 1}: here {here[-1]:.1f} s, over SSH {there[-1]:.1f} s", flush=True)
    a, b = statistics.median(here), statistics.median(there)
    print(f"preview up to healthy, median of {runs}: here {a:.1f} s, on the test host over SSH "
          f"{b:.1f} s: ratio {b / a:.2f}", flush=True)


def sent(app: App, version: str) -> list[dict[str, object]]:
    rows = [r for r in app.json("audit", "log")
            if r["action"] == "images" and r["detail"]["version"] == version]
    return list(rows[-1]["detail"]["sent"])


def second_release(remote: App) -> None:
    first = remote.json("release", "staging")["version"]
    for image in sent(remote, first):
        print(f"release {first} to staging on the host: {image['ref']}: {image['how']}, "
              f"{human(int(str(image['bytes'])))} sent of {human(int(str(image['size'])))}", flush=True)
    app_py = remote.folder / "backend" / "app.py"
    app_py.write_text(app_py.read_text() + "\n# a one-line change: one layer of the backend image\n")
    git(remote.folder, "commit", "-qam", "one line")
    second = remote.json("release", "staging")["version"]
    for image in sent(remote, second):
        size, count = int(str(image["size"])), int(str(image["bytes"]))
        print(f"release {second} (one layer changed): {image['ref']}: {image['how']}, {human(count)} sent of "
              f"{human(size)} ({100 * count / size:.2g} % of the whole image)" if size else
              f"release {second}: {image['ref']}: {image['how']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    servers = require_services()
    with tempfile.TemporaryDirectory() as tmp, host_set(1) as hosts:
        base = free_port_block(20)
        ports = f"  test:\n    port_base: {base}\n"
        local = example_app(hosts, Path(tmp) / "local" / "app", f"bl{os.getpid() % 100000}", servers,
                            f"environments:\n{ports}")
        # This machine's proxy for the local previews: on ports of its own, not a shared Caddy.
        local.env.update({"ENVPLANE_CADDY_ADMIN": f"http://127.0.0.1:{free_port()}",
                          "ENVPLANE_CADDY_LISTEN": f"127.0.0.1:{free_port()}"})
        remote = example_app(hosts, Path(tmp) / "remote" / "app", f"br{os.getpid() % 100000}", servers,
                             "hosts:\n  server:\n" + host_entry(hosts, 1) + f"environments:\n{ports}")
        try:
            deploys(local, remote, args.runs)
            second_release(remote)
        finally:
            for app in (local, remote):
                app.run("down", "test", "--pr", "1", "--purge")
            remote.run("down", "staging", "--purge", "--yes")
            local.run("proxy", "down", "--admin", local.env["ENVPLANE_CADDY_ADMIN"])
            cleanup(hosts, (local, remote))


def cleanup(hosts: HostSet, apps: tuple[App, ...]) -> None:
    """The images the runs built here (the host goes down with its own)."""
    for app in apps:
        found = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                                f"reference={app.name}-*"], capture_output=True, text=True).stdout.split()
        if found:
            subprocess.run(["docker", "rmi", *found], capture_output=True)


if __name__ == "__main__":
    main()
