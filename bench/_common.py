"""Timing helpers for the benchmarks: run a thing N times, print one line of figures.

    from bench._common import bench, bench_command
    bench("plan staging", lambda: actions.plan(...), runs=20)
    bench_command("envplane --help", ["envplane", "--help"], runs=7)

prints `name: median 12.3 ms (min 11.9, max 14.0, n=20)`. Benchmarks print figures;
they never assert on them (timings belong in reports, not in tests).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Timing:
    name: str
    millis: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.millis)

    def line(self) -> str:
        return (f"{self.name}: median {self.median:.1f} ms "
                f"(min {min(self.millis):.1f}, max {max(self.millis):.1f}, n={len(self.millis)})")


def measure(name: str, fn: Callable[[], object], runs: int = 7, warmup: int = 0) -> Timing:
    """Call `fn` `warmup` times untimed (imports, caches), then `runs` times timed."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    for _ in range(warmup):
        fn()
    millis = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        millis.append((time.perf_counter() - start) * 1000)
    return Timing(name, tuple(millis))


def bench(name: str, fn: Callable[[], object], runs: int = 7, warmup: int = 0) -> Timing:
    """Time a callable and print its line."""
    timing = measure(name, fn, runs, warmup)
    print(timing.line(), flush=True)
    return timing


def bench_command(name: str, args: Sequence[str], runs: int = 7, warmup: int = 0,
                  cwd: Path | str | None = None, env: dict[str, str] | None = None) -> Timing:
    """Time a command, each run a new process; a failing run raises (a broken benchmark)."""
    def once() -> None:
        subprocess.run(list(args), cwd=cwd, env=env, check=True, capture_output=True)

    return bench(name, once, runs, warmup)


def own_proxy(home: Path) -> dict[str, str]:
    """The environment of a bench that deploys: an ENVPLANE_HOME of its own and a proxy on
    free ports, never the default 8088/2019 that README's tour and the user's proxy take.
    Stop it at the end with `envplane proxy down` in that environment."""
    from tests.support import free_port_block

    port = free_port_block(2)
    return {"ENVPLANE_HOME": str(home), "ENVPLANE_CADDY_LISTEN": f"127.0.0.1:{port}",
            "ENVPLANE_CADDY_ADMIN": f"http://127.0.0.1:{port + 1}"}


def example_app(folder: Path, name: str, base: int, n: int, health_interval: str | None) -> dict[str, str]:
    """examples/finance-report as app `name`, its previews' ports from `base` (a stride of 10 a
    PR), the single-instance envs above them; returns the servers' and images' variables."""
    subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], check=True, capture_output=True)
    shutil.copytree(ROOT / "examples" / "finance-report", folder, ignore=shutil.ignore_patterns(".envplane"))
    if health_interval:
        compose = folder / "compose.yaml"
        text, ours = compose.read_text(), "      interval: 1s\n"
        if ours not in text:
            raise SystemExit("examples/finance-report/compose.yaml: the backend's 'interval: 1s' is gone")
        compose.write_text(text.replace(ours, f"      interval: {health_interval}\n"))
    spec = folder / "envplane.yaml"
    text = spec.read_text().replace("app: finance-report", f"app: {name}").replace("prefix: report",
                                                                                     f"prefix: {name}")
    top = base + 10 * n + 50
    spec.write_text(text + "environments:\n" f"  test:\n    port_base: {base}\n" + "".join(
        f"  {env}:\n    ports:\n      backend: {{8000: {top + 2 * i}}}\n"
        f"      frontend: {{8080: {top + 2 * i + 1}}}\n"
        for i, env in enumerate(("staging", "docker", "production"))))
    servers = {ours: os.environ.get(f"ENVPLANE_TEST_{ours.removeprefix('ENVPLANE_')}", "")
               for ours in ("ENVPLANE_POSTGRES_URL", "ENVPLANE_S3_ENDPOINT", "ENVPLANE_S3_ACCESS_KEY",
                            "ENVPLANE_S3_SECRET_KEY", "ENVPLANE_REDIS_URL")}
    if not all(servers.values()):
        raise SystemExit("--example needs the test servers' ENVPLANE_TEST_* variables: source the lines "
                         "scripts/services/*.sh print")
    return {**servers, "IMAGE_TAG": name}
