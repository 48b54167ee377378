"""Preview environments on a real engine. Prints figures; asserts nothing.

1. `envplane preview up` to healthy, beside `docker compose up -d --wait` of the same
   rendered file (ratio; the aim is <= 1.15).
2. 20 previews brought up at once: wall time and memory (containers + envplane).
3. `preview gc` of those 20 previews.

Usage: .venv/bin/python bench/bench_previews.py [APP_DIR] [--runs N] [--many N]
(APP_DIR defaults to examples/finance-report; it is copied, never changed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENVPLANE = [sys.executable, "-m", "envplane"]


def sh(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done


def timed(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    sh(args, cwd, env)
    return time.perf_counter() - start


def container_memory_mib(app: str) -> float:
    names = sh(["docker", "ps", "--filter", f"label=envplane.app={app}", "--format", "{{.Names}}"], ROOT)
    ids = names.stdout.split()
    if not ids:
        return 0.0
    stats = sh(["docker", "stats", "--no-stream", "--format", "{{json .}}", *ids], ROOT).stdout
    total = 0.0
    for line in stats.splitlines():
        used = json.loads(line)["MemUsage"].split("/")[0].strip()
        number, unit = float(used[:-3]), used[-3:]
        total += number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(unit, 1)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app", nargs="?", default=str(ROOT / "examples" / "finance-report"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--many", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "app"
        shutil.copytree(args.app, app, ignore=shutil.ignore_patterns(".envplane"))
        env = {"DATA_PATH": "", "ENVPLANE_HOME": str(Path(tmp) / "home")}
        name = sh([*ENVPLANE, "plan", "test", "--pr", "1", "--json"], app, env)
        app_name = json.loads(name.stdout)["target"]["app"]
        ours, theirs = [], []
        for run in range(args.runs):
            ours.append(timed([*ENVPLANE, "preview", "up", "--pr", "1"], app, env))
            sh([*ENVPLANE, "preview", "down", "--pr", "1"], app, env)
            rendered = Path(tmp) / "pr2.yaml"
            sh([*ENVPLANE, "render", "test", "--pr", "2", "-o", str(rendered)], app, env)
            planned = json.loads(sh([*ENVPLANE, "plan", "test", "--pr", "2", "--json"], app, env).stdout)
            for folder in planned["target"]["volume_paths"].values():
                Path(folder).mkdir(parents=True, exist_ok=True)
            theirs.append(timed(["docker", "compose", "-f", str(rendered), "up", "-d", "--wait"], app))
            sh(["docker", "compose", "-f", str(rendered), "down", "-v", "-t", "0"], app)
            print(f"run {run + 1}: envplane preview up {ours[-1]:.2f} s, "
                  f"compose up --wait {theirs[-1]:.2f} s")
        mine, base = statistics.median(ours), statistics.median(theirs)
        print(f"preview up to healthy: median {mine:.2f} s; "
              f"docker compose up -d --wait: median {base:.2f} s; "
              f"ratio {mine / base:.2f}")

        prs = list(range(101, 101 + args.many))
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(prs)) as pool:
            list(pool.map(lambda pr: sh([*ENVPLANE, "preview", "up", "--pr", str(pr)], app, env), prs))
        many = time.perf_counter() - start
        memory = container_memory_mib(app_name)
        print(f"{len(prs)} previews up at once: {many:.1f} s wall, containers use {memory:.0f} MiB "
              f"({memory / len(prs):.1f} MiB a preview)")

        from envplane.state import instances
        from envplane.state.db import open_store

        store = open_store(app)
        for pr in prs:
            instances.mark_closed(store, app_name, "test", f"pr-{pr}")
        gc = timed([*ENVPLANE, "preview", "gc", "--ttl", "0s"], app, env)
        left = container_memory_mib(app_name)
        print(f"preview gc of {len(prs)} previews: {gc:.1f} s ({gc / len(prs):.2f} s a preview); "
              f"left running: {left:.0f} MiB")


if __name__ == "__main__":
    main()
