"""/metrics (#14): what the server counts, in Prometheus' text format, read back by a strict
reader of the format (tests/prometheus_format.py; no Prometheus parser is installed here)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envplane.server import apps
from envplane.server import metrics as m
from envplane.server import scheduler as sched
from envplane.state import instances, releases
from envplane.state import scheduler_runs as runs
from envplane.state.db import Store, open_store
from tests.prometheus_format import FormatError, Sample, parse
from tests.support import busybox_app
from tests.unit.state.stores import store_for

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def find(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in samples if s.name == name and all(s.label(k) == v for k, v in labels.items())]


def one(samples: list[Sample], name: str, **labels: str) -> float:
    found = find(samples, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0].value


@pytest.fixture
def server(tmp_path: Path) -> Store:
    with store_for("sqlite", tmp_path / "server") as (store, _):
        yield store


def test_an_apps_instances_deploys_gates_and_jobs(server: Store, tmp_path: Path) -> None:
    folder = busybox_app(tmp_path / "shop", "shop", 40000)
    apps.add(server, folder)
    broken = busybox_app(tmp_path / "broken", "broken", 40200)
    apps.add(server, broken)
    (broken / "envplane.yaml").write_text("app: [\n")  # edited since, and no longer loads
    own = open_store(folder, None)
    try:
        for instance, seconds, outcome in (("pr-1", 12, "ok"), ("pr-2", 40, "ok"), ("pr-3", 700, "failed")):
            deployment = instances.start_deployment(own, "shop", "test", instance, "alice", clock=lambda: at(0))
            instances.finish_deployment(own, deployment.id, outcome, clock=lambda s=seconds: at(s))
        instances.upsert_instance(own, "shop", "staging", "staging", "ok")
        releases.record_gates(own, "shop", "v1.0.1", "production", "alice",
                              [("order", True, ""), ("p95", False, "p95 310 ms > 200 ms"),
                               ("approval", False, "no approval")])
        releases.record_gates(own, "shop", "v1.0.2", "production", "alice",
                              [("order", True, ""), ("p95", True, ""), ("approval", False, "no approval")])
    finally:
        own.close()
    run = runs.start(server, "backup", "shop", at(-7200), at(-6300), "here")
    runs.finish(server, run, "failed", "no Docker engine answers", at(-7190))
    good = runs.start(server, "preview-gc", "shop", at(-600), at(3000), "here")
    runs.finish(server, good, "ok", "nothing to collect", at(-590))

    text = m.text(server, {}, T0)
    samples = parse(text)
    assert one(samples, "envplane_app_loaded", app="shop") == 1
    assert one(samples, "envplane_app_loaded", app="broken") == 0
    assert one(samples, "envplane_instances", app="shop", env="test", status="ok") == 2
    assert one(samples, "envplane_instances", app="shop", env="test", status="failed") == 1
    assert one(samples, "envplane_instances", app="shop", env="staging", status="ok") == 1
    ok = {"app": "shop", "env": "test", "outcome": "ok"}
    assert one(samples, "envplane_deploy_duration_seconds_bucket", **ok, le="5") == 0
    assert one(samples, "envplane_deploy_duration_seconds_bucket", **ok, le="15") == 1
    assert one(samples, "envplane_deploy_duration_seconds_bucket", **ok, le="60") == 2
    assert one(samples, "envplane_deploy_duration_seconds_sum", **ok) == 52
    failed = {"app": "shop", "env": "test", "outcome": "failed"}
    assert one(samples, "envplane_deploy_duration_seconds_bucket", **failed, le="600") == 0
    assert one(samples, "envplane_deploy_duration_seconds_bucket", **failed, le="+Inf") == 1
    assert one(samples, "envplane_gate_results_total", app="shop", env="production", gate="p95",
               result="failed") == 1
    assert one(samples, "envplane_gate_results_total", app="shop", env="production", gate="approval",
               result="failed") == 2
    assert one(samples, "envplane_failed_gates", app="shop", env="production") == 1  # the newest attempt
    assert one(samples, "envplane_job_failed", app="shop", job="backup") == 1
    assert one(samples, "envplane_job_failed", app="shop", job="preview-gc") == 0
    assert one(samples, "envplane_job_last_success_timestamp_seconds", app="shop", job="preview-gc") == \
        at(-600).timestamp()
    assert one(samples, "envplane_job_seconds_since_success", app="shop", job="preview-gc") == 600
    assert one(samples, "envplane_job_seconds_since_success", app="shop", job="backup") == 7200
    assert one(samples, "envplane_job_interval_seconds", app="shop", job="backup") == 900
    alerts = find(samples, "envplane_alerts")
    assert ("shop", "backup", "failed") in {(s.label("app"), s.label("job"), s.label("kind")) for s in alerts}
    assert len(alerts) == len(sched.alerts(server, {}, T0))


def test_label_values_are_escaped_and_read_back() -> None:
    hostile = 'a "quoted"\\ back\nslash'
    family = m.Family("envplane_x", "gauge", "A help with \\ and\na line break.")
    family.add(math.inf, app=hostile)
    family.add(0.25, app="b")
    samples = parse(m.render([family]))
    assert [(s.label("app"), s.value) for s in samples] == [(hostile, math.inf), ("b", 0.25)]


@pytest.mark.parametrize(("text", "error"), [
    ("envplane_x 1\n", "before its family's TYPE"),
    ("# TYPE envplane_x gauge\nenvplane_x{a=\"1\"} 1\nenvplane_x{a=\"1\"} 2\n", "twice"),
    ("# TYPE envplane_x gauge\nenvplane_x{a=\"x\"y\"} 1\n", "labels not closed"),
    ("# TYPE envplane_x gauge\nenvplane_x{a=\"x\" b=\"y\"} 1\n", "expected , after label"),
    ("# TYPE envplane_x gauge\nenvplane_x{a=\"\\t\"} 1\n", "bad escape"),
    ("# TYPE envplane_x gauge\nenvplane_x 1,5\n", "is not a number"),
    ("# TYPE envplane_x gauge\n# TYPE envplane_y gauge\n# TYPE envplane_x gauge\n", "appears twice"),
    ("# TYPE envplane_h histogram\nenvplane_h_bucket{le=\"1\"} 2\nenvplane_h_bucket{le=\"+Inf\"} 1\n"
     "envplane_h_sum 3\nenvplane_h_count 1\n", "not cumulative"),
    ("# TYPE envplane_h histogram\nenvplane_h_bucket{le=\"1\"} 1\nenvplane_h_sum 3\nenvplane_h_count 1\n",
     "no +Inf bucket"),
    ("# TYPE envplane_h histogram\nenvplane_h_bucket{le=\"+Inf\"} 2\nenvplane_h_sum 3\nenvplane_h_count 1\n",
     "_count is not the +Inf bucket"),
    ("# TYPE envplane_x gauge\nenvplane_x 1", "must end with a line break"),
    ("# TYPE envplane_x gauge\n\nenvplane_x 1\n", "an empty line"),
    ("# TYPE 9x gauge\n", "bad metric name"),
])
def test_the_reader_refuses_what_the_format_forbids(text: str, error: str) -> None:
    with pytest.raises(FormatError, match=error.replace("+", r"\+")):
        parse(text)
