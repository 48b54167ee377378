"""Kubernetes output of the corpus: manifests of every env, the chart, and Helm's rendering
of the chart per env, for the corpus files that map as they are. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from envplane import actions
from envplane.errors import SpecError
from envplane.kubernetes.render import chart_files, manifests, write_chart
from tests.support import corpus_files, corpus_spec

ENVS = ["local", "docker", "ci", "test", "staging", "production", "dr"]
GIVEN = {"test": {"pr": 7}, "ci": {"run": "42"}}


def main() -> None:
    import helm_python as helm

    per_file, charts, helm_renders, refused = [], [], [], 0
    for compose in corpus_files():
        folder = Path(tempfile.mkdtemp())
        project = actions.open_project(corpus_spec(compose, folder), {})
        start = time.perf_counter()
        try:
            for env in ENVS:
                manifests(project, actions.resolve_checked(project, env, **GIVEN.get(env, {})))
        except SpecError:
            refused += 1
            continue
        per_file.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        write_chart(folder / "chart", chart_files(project))
        charts.append((time.perf_counter() - start) * 1000)
        with helm.Chart.load(folder / "chart") as chart:
            for env in ENVS:
                values = yaml.safe_load((folder / "chart" / f"values-{env}.yaml").read_text())
                start = time.perf_counter()
                chart.render(values={**values, **GIVEN.get(env, {})}, name="x", namespace="x")
                helm_renders.append((time.perf_counter() - start) * 1000)
    print(f"{len(per_file)} corpus files map as they are, {refused} are refused (fields named)")
    print(f"manifests of 7 envs, per file: median {statistics.median(per_file):.0f} ms")
    print(f"chart of 7 envs, per file: median {statistics.median(charts):.0f} ms")
    print(f"Helm (Go SDK) rendering one env of a chart: median {statistics.median(helm_renders):.1f} ms")


if __name__ == "__main__":
    main()
