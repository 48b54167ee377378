"""Cold start of the CLI (issue 11): `envplane --help`, `version`, `plan staging` and `status` on
the example.

Each run is a new process, as a user's is. The commands run in rounds, one of each per round,
so that a busy machine slows all of them alike (paired runs); besides wall time each run's CPU
time (user + system of the child) is read, which other work on the machine disturbs less.
Two floors are measured in the same rounds: the bare interpreter, and a two-command Typer app
(Typer and rich are what any `--help` of ours must load). Then `python -X importtime` says what
the imports cost. Prints medians; asserts nothing.

Usage: .venv/bin/python bench/bench_cli.py [ROUNDS] [--before SRC]
(--before SRC also runs the envplane commands from another checkout's src/ folder in the same
rounds, e.g. main's, for a paired before/after.)
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "finance-report"
PYTHON = sys.executable
ENVPLANE = [PYTHON, "-m", "envplane"]
TYPER_FLOOR = """
import typer
app = typer.Typer(add_completion=False)
@app.command()
def version() -> None:
    "Print a version."
    print("0")
@app.command()
def other() -> None:
    "Another command."
app()
"""

CASES: dict[str, list[str]] = {
    "python -c pass (floor)": [PYTHON, "-c", "pass"],
    "two-command Typer app --help (floor)": [PYTHON, "-c", TYPER_FLOOR, "--help"],
    "envplane --help": [*ENVPLANE, "--help"],
    "envplane version": [*ENVPLANE, "version"],
    "envplane plan staging": [*ENVPLANE, "plan", "staging"],
    "envplane plan staging --json": [*ENVPLANE, "plan", "staging", "--json"],
}
if shutil.which("docker"):  # status asks the engine (one `docker ps` of the app's containers)
    CASES["envplane status --json"] = [*ENVPLANE, "status", "--json"]


def once(args: list[str], src: str | None) -> tuple[float, float]:
    """Wall and CPU seconds (the child's user + system) of one run. Bytecode caches are
    written and read as after an install (a shell with PYTHONDONTWRITEBYTECODE=1 would
    compile envplane's modules again on every start)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if src:
        env["PYTHONPATH"] = src
    start = time.perf_counter()
    child = subprocess.Popen(args, cwd=EXAMPLE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed (exit {child.returncode}); run it by hand to see why")
    return wall, usage.ru_utime + usage.ru_stime


def import_ms(module: str) -> tuple[float, list[tuple[float, str]]]:
    """`python -X importtime -c 'import MODULE'`: the module's cumulative import time and the
    five largest envplane-or-library packages under it (self time summed per top package)."""
    done = subprocess.run([PYTHON, "-X", "importtime", "-c", f"import {module}"], cwd=EXAMPLE,
                          capture_output=True, text=True, check=True)
    total, per_package = 0.0, {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if not match:
            continue
        self_us, cumulative_us, name = int(match[1]), int(match[2]), match[4]
        if name == module:
            total = cumulative_us / 1000
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] == "envplane" else parts[0]
        per_package[key] = per_package.get(key, 0.0) + self_us / 1000
    top = sorted(((ms, name) for name, ms in per_package.items()), reverse=True)[:6]
    return total, top


def main() -> None:
    args = sys.argv[1:]
    before = None
    if "--before" in args:
        at = args.index("--before")
        before = args[at + 1]
        del args[at:at + 2]
    rounds = int(args[0]) if args else 7
    cases = {name: (argv, None) for name, argv in CASES.items()}
    if before:
        cases.update({f"{name} [before]": (argv, before) for name, argv in CASES.items()
                      if name.startswith("envplane")})
    walls: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    for argv, src in cases.values():  # warm-up: bytecode caches
        once(argv, src)
    for _ in range(rounds):
        for name, (argv, src) in cases.items():
            wall, cpu = once(argv, src)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"{rounds} rounds, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name in cases:
        print(f"{name}: wall median {statistics.median(walls[name]):.3f} s "
              f"(min {min(walls[name]):.3f}), CPU median {statistics.median(cpus[name]):.3f} s "
              f"(min {min(cpus[name]):.3f})")
    for module in ("envplane.cli.main", "envplane.actions"):
        total, top = import_ms(module)
        print(f"import {module}: {total:.0f} ms; most: "
              + ", ".join(f"{name} {ms:.0f} ms" for ms, name in top))


if __name__ == "__main__":
    main()
