"""Render every corpus file for every env, beside `docker compose config` on the same files.

Prints the total and per-file times and the ratio; asserts nothing.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envplane import actions
from tests.support import corpus_files, corpus_spec

ENVS = [("local", None), ("docker", None), ("ci", None), ("test", 7), ("staging", None),
        ("production", None), ("dr", None)]


def render_all(compose: Path, folder: Path) -> float:
    start = time.perf_counter()
    project = actions.open_project(corpus_spec(compose, folder), {})
    for env, pr in ENVS:
        target = actions.resolve_checked(project, env, pr, "42" if env == "ci" else None)
        actions.render_text(project, target)
    return (time.perf_counter() - start) * 1000


def compose_config(compose: Path) -> float:
    start = time.perf_counter()
    for _ in ENVS:
        subprocess.run(["docker", "compose", "-f", str(compose), "config"], check=False,
                       capture_output=True, cwd=compose.parent)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    files = corpus_files()
    if not files:
        sys.exit("no corpus at ../shared/corpus/compose")
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for compose in files:
            folder = Path(tmp) / compose.parent.name
            folder.mkdir()
            render_all(compose, folder)  # warm imports once per file; the timed run follows
            mine = render_all(compose, folder)
            other = compose_config(compose)
            ours.append(mine)
            theirs.append(other)
            print(f"{compose.parent.name:28} envplane {mine:7.1f} ms   compose config {other:7.1f} ms"
                  f"   (x{len(ENVS)} envs)")
    print(f"total: envplane {sum(ours):.0f} ms, docker compose config {sum(theirs):.0f} ms, "
          f"ratio {sum(ours) / sum(theirs):.2f}")
    print(f"per file (all {len(ENVS)} envs): envplane median {statistics.median(ours):.1f} ms, "
          f"compose median {statistics.median(theirs):.1f} ms")


if __name__ == "__main__":
    main()
