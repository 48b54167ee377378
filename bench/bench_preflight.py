"""What the pre-flight costs a no-op `up` (#10.2, #10.3): a small app (busybox web with a
database, a bucket and a Redis user) is up on staging; `up staging` again changes nothing,
and runs every check (isolation, ports, servers, secrets, images, the trial — skipped when
the same file with the same images passed one). Prints what the first `up`'s images and
trial took, the wall time of the no-op command and the median of each step; asserts nothing.

Usage: source /work/dev-env.sh (the test servers), then, for the code to measure,
       PYTHONPATH=src .venv/bin/python bench/bench_preflight.py [RUNS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import measure
from tests.support import busybox_app, ensure_busybox_image, free_port_block


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    ensure_busybox_image()
    servers = ("ENVPLANE_POSTGRES_URL", "ENVPLANE_S3_ENDPOINT", "ENVPLANE_S3_ACCESS_KEY",
               "ENVPLANE_S3_SECRET_KEY", "ENVPLANE_REDIS_URL")
    env = {**os.environ, **{ours: os.environ[f"ENVPLANE_TEST_{ours.removeprefix('ENVPLANE_')}"]
                            for ours in servers}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env["ENVPLANE_HOME"] = str(folder / "home")
        name = f"bpf{uuid.uuid4().hex[:6]}"
        block = free_port_block()
        # up starts a proxy when none answers: one of the bench's own, stopped at the end,
        # never the machine's default 8088/2019 left running after the home is deleted.
        env["ENVPLANE_CADDY_ADMIN"] = f"http://127.0.0.1:{block + 190}"
        env["ENVPLANE_CADDY_LISTEN"] = f"127.0.0.1:{block + 191}"
        busybox_app(folder, name, block)
        spec = folder / "envplane.yaml"
        spec.write_text(spec.read_text().replace("    health: /health.txt\n",
                                                 "    health: /health.txt\n    uses: [postgres, s3, redis]\n")
                        + "resources:\n  postgres: {}\n  s3: {}\n  redis: {}\n")

        def up() -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "envplane", "up", "staging", "--json"], cwd=folder,
                                  env=env, capture_output=True, text=True, check=True)

        try:
            first = {s["kind"]: s["seconds"] for s in json.loads(up().stdout)["steps"]}  # makes everything
            print("first up: " + ", ".join(f"{k} {first[k] * 1000:.0f} ms" for k in ("images", "trial")
                                           if k in first))
            steps: dict[str, list[float]] = defaultdict(list)

            def again() -> None:
                for step in json.loads(up().stdout)["steps"]:
                    steps[step["kind"]].append(step["seconds"])

            print(measure("no-op up staging (wall, new process)", again, runs).line())
            for kind, seconds in steps.items():
                print(f"  {kind}: median {statistics.median(seconds) * 1000:.0f} ms")
        finally:
            subprocess.run([sys.executable, "-m", "envplane", "down", "staging", "--purge", "--no-backup",
                            "--yes"], cwd=folder, env=env, capture_output=True)
            subprocess.run([sys.executable, "-m", "envplane", "proxy", "down"], cwd=folder, env=env,
                           capture_output=True)


if __name__ == "__main__":
    main()
