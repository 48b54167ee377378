"""`envplane preview up` to healthy beside raw `docker compose up -d --wait` of the same rendered
file (issue 11's method), on a two-service app: busybox web with a 1 s healthcheck + a worker.

Paired runs in one process: each round brings PR 1 up with envplane and PR 2 up with Compose
from the file envplane rendered for it (its bind folders made first, as envplane would), the
order alternating between rounds so that a busy machine weighs on both alike; then each is
taken down (`preview down` vs `docker compose down -v`). Besides wall time, each run's CPU time
(the process and the docker CLIs it waited for; not dockerd's) is read. The steps envplane
reports (`--json`) give the breakdown; the time before its first step is start-up: imports,
spec load, resolve, isolation check, state store. One more run goes through a `docker` shim
on PATH that counts envplane's engine calls. bench_scale.py has the many-at-once and gc
figures. Prints figures; asserts nothing.

With --example the app is examples/finance-report, each preview with its own database, bucket
and Redis user on the test servers (ENVPLANE_TEST_*, as scripts/services/*.sh print them):
envplane's `up` provisions PR 1's and its `down` drops them, inside its time; PR 2's are made
once before the rounds (raw Compose makes none) and dropped at the end.

Usage: .venv/bin/python bench/bench_preview.py [--runs N] [--port-base P] [--example]
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
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT / "src"))

from bench._common import example_app  # noqa: E402
from tests.support import remove_example_images  # noqa: E402

ENVPLANE = [sys.executable, "-m", "envplane"]

COMPOSE = """\
services:
  web:
    image: busybox:stable
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro", "webdata:/data"]
    init: true
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health.txt"]
      interval: 1s
      timeout: 1s
      retries: 30
  worker:
    image: busybox:stable
    command: ["sh", "-c", "while true; do sleep 1; done"]
    init: true
volumes:
  webdata: {}
"""

SPEC = """\
app: {app}
domain: example.com
compose: compose.yaml
services:
  web:
    public: 8080
    health: /health.txt
environments:
  test:
    port_base: {port_base}
    data_path: {data}/{{app}}-pr-{{pr}}
"""

# `preview up --pr 1` in one process, phase by phase, as do_up runs it: wall and CPU of each.
PHASES = """
import json, os, time
from pathlib import Path
marks = []
def clocks():
    t = os.times()
    return [time.perf_counter(), t.user + t.system, t.children_user + t.children_system]
def mark(name, since=clocks()):
    now = clocks()
    marks.append((name, *(a - b for a, b in zip(now, since))))
    since[:] = now
import envplane.cli.main
mark("import the CLI (Typer, rich, command modules)")
from envplane import actions, lifecycle, preview
from envplane.apply import Applier
mark("import spec models, Compose, state store (SQLAlchemy), apply, backends")
project = actions.open_project(Path("envplane.yaml"), os.environ)
mark("spec load (envplane.yaml + Compose files)")
known = lifecycle.known_instances(project, os.environ)
mark("state: read the known instances")
target = actions.resolve_checked(project, preview.preview_env(project.envs), 1, None, known)
mark("resolve + isolation check against every other instance")
plan = actions.plan(project, target)
mark("plan")
session = lifecycle.open_session(project)
mark("state: open the session (store, audit key)")
steps = []
lifecycle.up(session, plan, lambda step, state, seconds: steps.append((step.kind, state, seconds))
             if state != "start" else None, 120.0)
mark("apply (the steps below)")
print(json.dumps({"marks": marks, "steps": steps}))
"""

SHIM = """#!/bin/sh
echo "$*" >> {log}
exec {docker} "$@"
"""


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds and stdout of one run."""
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall, done.stdout


def docker_call(line: str) -> str:
    """`ps`, `info`, `compose up`: what a logged docker command line does."""
    words = line.split()
    if words[:1] != ["compose"]:
        return words[0] if words else "?"
    rest = iter(words[1:])
    for word in rest:
        if word in ("--project-name", "--file", "-p", "-f"):
            next(rest, None)
        elif not word.startswith("-"):
            return f"compose {word}"
    return "compose"


class Children:
    """CPU seconds of waited-for children since the last call (os.times: user + system)."""

    def __init__(self) -> None:
        self.last = self._now()

    @staticmethod
    def _now() -> float:
        t = os.times()
        return t.children_user + t.children_system

    def delta(self) -> float:
        now = self._now()
        spent, self.last = now - self.last, now
        return spent


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    # Above the test suite's port blocks (10000-30000) and below the kernel's ephemeral ports.
    parser.add_argument("--port-base", type=int, default=31000)
    parser.add_argument("--example", action="store_true", help="examples/finance-report, with its servers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envplane-bench-") as tmp:
        root = Path(tmp)
        app = root / "app"
        name = f"bench{os.getpid() % 100000}"
        env = {k: v for k, v in os.environ.items() if k not in ("DATA_PATH", "PYTHONDONTWRITEBYTECODE")}
        if args.example:
            env.update(example_app(app, name, args.port_base, 2, None))
        else:
            (app / "www").mkdir(parents=True)
            (app / "www" / "health.txt").write_text("ok\n")
            (app / "compose.yaml").write_text(COMPOSE)
            (app / "envplane.yaml").write_text(SPEC.format(app=name, port_base=args.port_base,
                                                           data=root / "data"))
        # A home, and a proxy (Caddy) on ports, of the bench's own; bytecode caches as installed.
        env.update(ENVPLANE_HOME=str(root / "home"),
                   ENVPLANE_CADDY_ADMIN=f"http://127.0.0.1:{args.port_base + 190}",
                   ENVPLANE_CADDY_LISTEN=f"127.0.0.1:{args.port_base + 191}")
        cpu = Children()

        def run(argv: list[str], extra: dict[str, str] | None = None) -> tuple[float, float, str]:
            cpu.delta()
            wall, out = timed(argv, app, {**env, **(extra or {})})
            return wall, cpu.delta(), out

        rendered = root / "pr2.yaml"
        raw_up = ["docker", "compose", "-f", str(rendered), "up", "-d", "--wait"]
        raw_down = ["docker", "compose", "-f", str(rendered), "down", "-v"]

        ours_up: list[tuple[float, float]] = []
        theirs_up: list[tuple[float, float]] = []
        ours_down: list[tuple[float, float]] = []
        theirs_down: list[tuple[float, float]] = []
        steps: dict[str, list[float]] = {}
        startup: list[float] = []

        def envplane_up() -> None:
            wall, spent, out = run([*ENVPLANE, "preview", "up", "--pr", "1", "--json"])
            ours_up.append((wall, spent))
            report = json.loads(out)
            per_kind: dict[str, float] = {}
            for step in report["steps"]:
                per_kind[step["kind"]] = per_kind.get(step["kind"], 0.0) + step["seconds"]
            for kind, seconds in per_kind.items():
                steps.setdefault(kind, []).append(seconds)
            startup.append(wall - report["seconds"])

        def compose_up() -> None:
            for folder in folders:
                Path(folder).mkdir(parents=True, exist_ok=True)
            wall, spent, _ = run(raw_up)
            theirs_up.append((wall, spent))

        def clean_up() -> None:  # whatever a failed round left running, and PR 2's resources
            for argv in ([*ENVPLANE, "preview", "down", "--pr", "1"], raw_down,
                         [*ENVPLANE, "preview", "down", "--pr", "2"], [*ENVPLANE, "proxy", "down"]):
                subprocess.run(argv, cwd=app, env=env, capture_output=True)
            if args.example:
                remove_example_images(name)

        try:
            if args.example:  # PR 2's database, bucket and Redis user, which raw Compose reads
                run([*ENVPLANE, "preview", "up", "--pr", "2"])
            run([*ENVPLANE, "render", "test", "--pr", "2", "-o", str(rendered)])
            planned = json.loads(run([*ENVPLANE, "plan", "test", "--pr", "2", "--json"])[2])
            folders = [planned["target"]["data_path"], *planned["target"]["volume_paths"].values()]
            if args.example:
                run(raw_down)
            run([*ENVPLANE, "preview", "up", "--pr", "1"])  # warm-up: bytecode caches, the proxy started
            run([*ENVPLANE, "preview", "down", "--pr", "1"])
            for round_ in range(args.runs):
                first, second = (envplane_up, compose_up) if round_ % 2 == 0 else (compose_up, envplane_up)
                first()
                second()
                wall, spent, _ = run([*ENVPLANE, "preview", "down", "--pr", "1"])
                ours_down.append((wall, spent))
                wall, spent, _ = run(raw_down)
                theirs_down.append((wall, spent))
                shutil.rmtree(planned["target"]["data_path"], ignore_errors=True)
                print(f"round {round_ + 1}: up {ours_up[-1][0]:.2f} s vs {theirs_up[-1][0]:.2f} s, "
                      f"down {ours_down[-1][0]:.2f} s vs {theirs_down[-1][0]:.2f} s", flush=True)

            load = os.getloadavg()[0]
            print(f"\n{args.runs} paired rounds, load average {load:.1f} on {os.cpu_count()} cores")
            for what, ours, theirs, raw in (("up to healthy", ours_up, theirs_up, "up -d --wait"),
                                            ("down (purge)", ours_down, theirs_down, "down -v")):
                mine, base = median([w for w, _ in ours]), median([w for w, _ in theirs])
                print(f"preview {what}: wall median {mine:.2f} s vs docker compose {raw} {base:.2f} s: "
                      f"ratio {mine / base:.2f}; CPU median {median([c for _, c in ours]):.2f} s vs "
                      f"{median([c for _, c in theirs]):.2f} s")
            print(f"  start-up before the first step (imports, spec, resolve, isolation, state): "
                  f"median {median(startup):.2f} s")
            for kind, seconds in steps.items():
                print(f"  step {kind}: median {median(seconds):.2f} s")

            # One up, phase by phase, in one process (imports, spec, state, isolation, steps).
            timing = json.loads(run([sys.executable, "-c", PHASES])[2])
            print("\none preview up, phase by phase "
                  "(wall / CPU of envplane / CPU of the docker CLIs it ran):")
            for phase, wall, spent, children in timing["marks"]:
                print(f"  {phase}: {wall:.3f} s / {spent:.3f} s / {children:.3f} s")
            for kind, state, seconds in timing["steps"]:
                print(f"    step {kind} ({state}): {seconds:.3f} s")
            run([*ENVPLANE, "preview", "down", "--pr", "1"])

            # The engine calls of one up and one down, counted by a docker shim on PATH.
            real = shutil.which("docker")
            assert real is not None
            shim = root / "shim"
            shim.mkdir()
            log = root / "docker-calls.log"
            (shim / "docker").write_text(SHIM.format(log=log, docker=real))
            (shim / "docker").chmod(0o755)
            on_path = {"PATH": f"{shim}{os.pathsep}{env['PATH']}"}
            for what, argv in (("up", ["preview", "up", "--pr", "1"]),
                               ("down", ["preview", "down", "--pr", "1"])):
                log.write_text("")
                run([*ENVPLANE, *argv], on_path)
                count = Counter(docker_call(line) for line in log.read_text().splitlines())
                print(f"docker processes in one preview {what}: {sum(count.values())} ("
                      + ", ".join(f"{n} {name}" for name, n in count.most_common()) + ")")
            shutil.rmtree(planned["target"]["data_path"], ignore_errors=True)
        finally:
            clean_up()


if __name__ == "__main__":
    main()
