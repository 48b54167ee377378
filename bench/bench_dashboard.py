"""The dashboard under a real `envplane serve` with a real running instance (#14): how long
its pages take, and how fast a log burst reaches a reader of its live stream (#7719: logs
that freeze in the browser). Prints figures; asserts nothing.

    .venv/bin/python bench/bench_dashboard.py [--pages N] [--burst LINES]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dashboard_kit import serve


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--burst", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, serve(Path(folder)) as served, served.client() as client:
        served.login(client, "alice")
        pages = {"ladder /": "/", "instance": f"/apps/{served.app}/instances/staging/staging",
                 "release": f"/apps/{served.app}/releases/v1.0.1", "audit": "/audit", "jobs": "/jobs"}
        print(f"{'page':<10} {'p50 ms':>8} {'p95 ms':>8}   ({args.pages} requests each, one at a time)")
        for name, path in pages.items():
            took = []
            for _ in range(args.pages):
                started = time.perf_counter()
                assert client.get(path).status_code == 200
                took.append((time.perf_counter() - started) * 1000)
            print(f"{name:<10} {statistics.median(took):>8.0f} {percentile(took, 95):>8.0f}")
        container = subprocess.run(["docker", "ps", "-q", "--filter", f"label=envplane.app={served.app}",
                                    "--filter", "label=envplane.env=staging"],
                                   capture_output=True, text=True, check=True).stdout.split()[0]
        stream = f"/apps/{served.app}/instances/staging/staging/logs/web/stream"
        with client.stream("GET", stream, timeout=300) as answer:
            lines = answer.iter_lines()
            next(line for line in lines if line.startswith("data:"))
            last = f"burst {args.burst}<"
            started = time.perf_counter()
            subprocess.run(["docker", "exec", container, "sh", "-c",
                            f"seq 1 {args.burst} | sed 's|.*|burst &|' > /proc/1/fd/1"], check=True)
            events = received = skipped = 0
            for line in lines:
                if line.startswith("event: line"):
                    events += 1
                elif line.startswith("data:"):
                    received += line.count('<span class="line">')
                    if "lines skipped" in line:
                        skipped += int(line.split("… ")[1].split(" ")[0])
                    if last in line:
                        break
            seconds = time.perf_counter() - started
        print(f"log burst: {args.burst} lines reached the reader's stream in {seconds:.2f} s "
              f"({events} events; {received} lines sent, {skipped} skipped to keep up)")


if __name__ == "__main__":
    main()
