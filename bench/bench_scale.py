"""Many previews on one host (issue 11: scale). Prints figures; asserts nothing.

On a two-service busybox app (web: httpd with a 1 s healthcheck, worker: sleep), with N previews:
1. bring-up of the N previews one after another (as webhooks would arrive): total and per preview;
2. `envplane status` and `envplane verify` with the N running;
3. memory per idle preview (docker stats of the app's containers);
4. a no-op `preview up` of a running preview;
5. the isolation check of one preview against the N others (in-process: resolve_checked);
6. `preview gc` of the N (closed) previews.
Everything the bench makes (containers, networks, volumes, folders) is removed at the end.

Usage: .venv/bin/python bench/bench_scale.py [N] [--profile DIR] [--example] [--health-interval S]
(--profile writes cProfile output of status, no-op up and gc into DIR and prints their top lines;
--example runs N previews of examples/finance-report instead: backend + frontend, each preview
with its own database, bucket and Redis user on the test servers, ENVPLANE_TEST_* as the e2e
tests use them; --health-interval sets the example backend's healthcheck interval, 1s in
examples/finance-report: each probe starts a Python interpreter in the container, so 50
previews probing every second want more than two cores for their healthchecks alone.)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT / "src"))

from bench._common import example_app, own_proxy  # noqa: E402
from tests.support import (  # noqa: E402
    busybox_app,
    ensure_busybox_image,
    free_port_block,
    remove_example_images,
)

ENVPLANE = [sys.executable, "-m", "envplane"]
COMPOSE = """\
services:
  web:
    image: busybox:stable
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro"]
    init: true
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health.txt"]
      interval: 1s
      timeout: 1s
      retries: 30
  worker:
    image: busybox:stable
    command: ["sleep", "86400"]
    init: true
"""


CPU: list[float] = []  # envplane's own CPU seconds (user + system) of each run, the last one last
CODES: list[int] = []  # the exit code of each run, the last one last


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run(args: list[str], cwd: Path, env: dict[str, str], profile: Path | None = None) -> float:
    """Run a CLI command in a fresh process; its wall time in seconds (a failure ends the bench).
    Its CPU time (envplane's own, not the engine's) goes to CPU: on a loaded host the wall
    time is mostly waiting for a core, the CPU time is what envplane costs."""
    command = ENVPLANE if profile is None else [sys.executable, "-m", "cProfile", "-o", str(profile),
                                                 "-m", "envplane"]
    cpu, start = children_cpu(), time.perf_counter()
    done = subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env})
    took = time.perf_counter() - start
    CPU.append(children_cpu() - cpu)
    CODES.append(done.returncode)
    if done.returncode != 0 and args[0] != "verify":  # verify also judges other tests' leftovers
        raise SystemExit(f"envplane {' '.join(args)} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    return took


def top(profile: Path, lines: int = 18) -> str:
    text = io.StringIO()
    pstats.Stats(str(profile), stream=text).sort_stats("cumulative").print_stats(lines)
    return "\n".join(line for line in text.getvalue().splitlines() if line.strip()
                     and "{built-in method builtins.exec}" not in line)


def memory_mib(app: str) -> tuple[float, int]:
    """The app's containers' memory use (MiB, as docker stats reports it) and their count."""
    ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=envplane.app={app}"],
                         capture_output=True, text=True, check=True).stdout.split()
    if not ids:
        return 0.0, 0
    stats = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{json .}}", *ids],
                           capture_output=True, text=True, check=True).stdout
    total = 0.0
    for line in stats.splitlines():
        used = json.loads(line)["MemUsage"].split("/")[0].strip()
        number, unit = float(used[:-3]), used[-3:]
        total += number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(unit, 1)
    return total, len(ids)


def isolation_seconds(app: Path, env: dict[str, str], pr: int, runs: int = 5) -> float:
    """The median time to resolve one preview and check it against every other instance."""
    from envplane import actions
    from envplane.lifecycle import known_instances

    environ = {**os.environ, **env}
    project = actions.open_project(app / "envplane.yaml", environ)
    known = known_instances(project, environ)  # list (older envplane) or actions.Known
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        actions.resolve_checked(project, "test", pr, known=known)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def cleanup(app_name: str) -> None:
    """Remove whatever of the bench's app is left (a bench that failed half-way)."""
    label = f"label=envplane.app={app_name}"
    for kind, query in (("container", ["ps", "-aq"]), ("network", ["network", "ls", "-q"]),
                        ("volume", ["volume", "ls", "-q"])):
        ids = subprocess.run(["docker", *query, "--filter", label], capture_output=True,
                             text=True).stdout.split()
        if ids:
            remove = ["rm", "-f"] if kind == "container" else [kind, "rm"]
            subprocess.run(["docker", *remove, *ids], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=20)
    parser.add_argument("--profile", type=Path, help="write cProfile files here and print their top")
    parser.add_argument("--example", action="store_true", help="previews of examples/finance-report")
    parser.add_argument("--health-interval", help="the example backend's healthcheck interval, e.g. 10s")
    args = parser.parse_args()
    ensure_busybox_image()
    name = f"sc{uuid.uuid4().hex[:6]}"
    prs = list(range(1, args.n + 1))
    profile = args.profile
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # Each PR takes a stride of 10 ports from the block; the single-instance envs publish
        # above the PRs' part of it.
        base = free_port_block(10 * args.n + 100)
        env = {"DATA_PATH": "", **own_proxy(Path(tmp) / "home")}
        if args.example:
            app = Path(tmp) / "app"
            env.update(example_app(app, name, base, args.n, args.health_interval))
        else:
            app = busybox_app(Path(tmp) / "app", name, base, env_ports=False)
            (app / "compose.yaml").write_text(COMPOSE)
            spec = app / "envplane.yaml"
            spec.write_text(spec.read_text().replace(
                "  staging:\n", f"  staging:\n    ports: {{web: {{8080: {base + 10 * args.n + 50}}}}}\n")
                + f"  docker:\n    ports: {{web: {{8080: {base + 10 * args.n + 60}}}}}\n"
                f"  production:\n    ports: {{web: {{8080: {base + 10 * args.n + 70}}}}}\n")
        try:
            ups = []
            for pr in prs:
                ups.append(run(["preview", "up", "--pr", str(pr)], app, env))
                print(f"  preview up --pr {pr}: {ups[-1]:.2f} s (cpu {CPU[-1]:.2f} s)", flush=True)
            print(f"bring-up of {args.n} previews, one after another: {sum(ups):.1f} s, "
                  f"cpu {sum(CPU[:len(ups)]):.1f} s "
                  f"({sum(ups) / len(ups):.2f} s a preview; first {ups[0]:.2f} s, last {ups[-1]:.2f} s)",
                  flush=True)
            status = min(run(["status"], app, env) for _ in range(3))
            print(f"status with {args.n} previews running: {status:.2f} s (best of 3; "
                  f"cpu {min(CPU[-3:]):.2f} s)", flush=True)
            verify = run(["verify"], app, env)
            verdict = "passed" if CODES[-1] == 0 else f"exit {CODES[-1]}"
            print(f"verify with {args.n} previews running: {verify:.2f} s (cpu {CPU[-1]:.2f} s), {verdict}",
                  flush=True)
            time.sleep(5)  # let the previews settle into idle
            used, containers = memory_mib(name)
            print(f"memory: {used:.0f} MiB in {containers} containers, "
                  f"{used / args.n:.1f} MiB an idle preview", flush=True)
            noop = sorted(run(["preview", "up", "--pr", "1"], app, env) for _ in range(3))[1]
            print(f"no-op preview up of a running preview: {noop:.2f} s (median of 3; "
                  f"cpu {sorted(CPU[-3:])[1]:.2f} s)", flush=True)
            print(f"isolation check of one preview against {args.n - 1} others and the ladder: "
                  f"{isolation_seconds(app, env, prs[-1]) * 1000:.1f} ms (in-process, median of 5)",
                  flush=True)
            if profile:
                for label, command in (("status", ["status"]), ("noop-up", ["preview", "up", "--pr", "1"])):
                    run(command, app, env, profile / f"{label}.prof")
                    print(f"--- profile: {label}\n{top(profile / f'{label}.prof')}")

            from envplane.spec.load import load_project
            from envplane.state import instances
            from envplane.state.db import open_store

            project = load_project(app / "envplane.yaml", {**os.environ, **env})
            store = open_store(project.root)
            for pr in prs:
                instances.mark_closed(store, name, "test", f"pr-{pr}")
            gc = run(["preview", "gc", "--ttl", "0s"], app, env,
                     profile / "gc.prof" if profile else None)
            _, running = memory_mib(name)
            print(f"preview gc of {args.n} closed previews: {gc:.1f} s ({gc / args.n:.2f} s a preview; "
                  f"cpu {CPU[-1]:.2f} s); containers left: {running}", flush=True)
            if profile:
                print(f"--- profile: gc\n{top(profile / 'gc.prof')}")
        except BaseException:
            # A run that failed half-way: purge each preview the envplane way (its data path
            # and state too), then whatever of the app is left on the engine.
            for pr in prs:
                subprocess.run([*ENVPLANE, "preview", "down", "--pr", str(pr)], cwd=app, capture_output=True,
                               env={**os.environ, **env})
            raise
        finally:
            cleanup(name)
            if args.example:
                remove_example_images(name)
            subprocess.run([*ENVPLANE, "down", "staging", "--purge", "--yes"], cwd=app, capture_output=True,
                           env={**os.environ, **env})
            subprocess.run([*ENVPLANE, "proxy", "down"], cwd=app, capture_output=True,
                           env={**os.environ, **env})


if __name__ == "__main__":
    main()
