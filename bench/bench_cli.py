"""Cold start of the CLI: `envplane --help` and `envplane plan staging` on the example.

Each run is a new process, as a user's is. Prints medians; asserts nothing.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "finance-report"
ENVPLANE = str(Path(sys.executable).with_name("envplane"))


def timed(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, cwd=EXAMPLE, check=True, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


def show(name: str, times: list[float]) -> None:
    print(
        f"{name}: median {statistics.median(times):.0f} ms "
        f"(min {min(times):.0f}, max {max(times):.0f}, n={len(times)})"
    )


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    show("envplane --help", timed([ENVPLANE, "--help"], runs))
    show("envplane plan staging", timed([ENVPLANE, "plan", "staging"], runs))
    show("envplane plan staging --json", timed([ENVPLANE, "plan", "staging", "--json"], runs))


if __name__ == "__main__":
    main()
