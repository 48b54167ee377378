"""What the scheduler's reads cost (issue 14): overview() and alerts() (the dashboard calls
them on every page, the webhook after every look), /metrics' text, and one look of the
scheduler with nothing due. Prints medians; asserts nothing.

    .venv/bin/python bench/bench_scheduler.py [APPS] [RUNS]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "src")]

from envplane.server import apps, home, metrics, scheduler  # noqa: E402
from envplane.state import scheduler_runs as runs  # noqa: E402
from tests.support import busybox_app  # noqa: E402


def median_ms(work: Callable[[], object], rounds: int = 20) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1000


def main(app_count: int = 5, run_count: int = 2000) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-scheduler-"))
    environ = {**os.environ, "ENVPLANE_SERVER_HOME": str(folder / "home")}
    environ.pop("ENVPLANE_STATE_URL", None)
    store = home.open_server_store(environ)
    for i in range(app_count):
        apps.add(store, busybox_app(folder / f"app{i}", f"bench{i}", 40000 + i * 200))
    start = datetime.now(UTC) - timedelta(days=30)
    for n in range(run_count):
        at = start + timedelta(minutes=n)
        run = runs.start(store, ("preview-gc", "backup", "drill")[n % 3], f"bench{n % app_count}", at,
                         at + timedelta(hours=1), "bench")
        runs.finish(store, run, "ok" if n % 7 else "failed", "bench", at + timedelta(seconds=5))
    idle = scheduler.Scheduler(store, {**environ, "ENVPLANE_SCHEDULE_PREVIEW_GC": "off",
                                       "ENVPLANE_SCHEDULE_BACKUP": "off", "ENVPLANE_SCHEDULE_DRILL": "off"})
    print(f"{app_count} apps x 3 jobs, {run_count} runs recorded, SQLite; load {os.getloadavg()[0]:.1f}")
    print(f"overview():               {median_ms(lambda: scheduler.overview(store, environ)):7.1f} ms")
    print(f"alerts():                 {median_ms(lambda: scheduler.alerts(store, environ)):7.1f} ms")
    print(f"/metrics text:            {median_ms(lambda: metrics.text(store, environ), 10):7.1f} ms")
    print(f"a look with nothing due:  {median_ms(idle.run_due):7.1f} ms")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
