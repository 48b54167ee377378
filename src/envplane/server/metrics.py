"""GET /metrics: the server's figures in Prometheus' text format 0.0.4 (issue 14); and
GET /api/v1/scheduler: the scheduler's jobs and the alerts that stand.

Per registered app: its instances per env and status, the durations of its deployments (a
histogram per env and outcome), its gate results and the gates failing in each env's newest
evaluation; per scheduler job: when it last ran and last succeeded, the seconds since its
last success, whether its last run failed; and every alert that stands (`envplane_alerts`,
one series per alert), so a Prometheus rule `envplane_alerts > 0` pages someone. An app
whose spec no longer loads is `envplane_app_loaded 0`, never left out.

It needs a token with the `read` scope (Prometheus' `authorization` in its scrape config).
Rendering is a pure function of the figures (`render`), tested against the format's rules.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from envplane import __version__
from envplane.errors import EnvplaneError
from envplane.server import problems
from envplane.server.api import Reader, context
from envplane.server.scheduler import store_of
from envplane.state.clock import utc_now
from envplane.state.db import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEPLOY_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)  # seconds


@dataclass
class Family:
    name: str
    kind: str  # gauge, counter, histogram
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)  # (suffix, labels, value)

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        self.samples.append((suffix, labels, value))


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The exposition text: HELP and TYPE once per family, then its samples."""
    lines = []
    for family in families:
        shown_help = family.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {family.name} {shown_help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for suffix, labels, value in family.samples:
            shown = ",".join(f'{key}="{_label_value(str(text))}"' for key, text in labels.items())
            lines.append(f"{family.name}{suffix}{{{shown}}} {_number(value)}" if shown
                         else f"{family.name}{suffix} {_number(value)}")
    return "\n".join(lines) + "\n"


def histogram(family: Family, values: list[float], buckets: tuple[float, ...], **labels: str) -> None:
    for bound in buckets:
        family.add(sum(1 for v in values if v <= bound), "_bucket", **labels, le=_number(bound))
    family.add(len(values), "_bucket", **labels, le="+Inf")
    family.add(sum(values), "_sum", **labels)
    family.add(len(values), "_count", **labels)


def collect(store: Store, environ: Mapping[str, str] | None = None, now: datetime | None = None
            ) -> list[Family]:
    from envplane.server import apps as registry
    from envplane.server import scheduler
    from envplane.state import figures

    env = os.environ if environ is None else environ
    moment = now or utc_now()
    info = Family("envplane_info", "gauge", "The envplane server answering.")
    info.add(1, version=__version__)
    loaded = Family("envplane_app_loaded", "gauge", "1 when the registered app's spec loads, else 0.")
    instances = Family("envplane_instances", "gauge", "Instances of each app per env and status, as its "
                       "state store records them.")
    deploys = Family("envplane_deploy_duration_seconds", "histogram", "How long deployments (up, release, "
                     "promote, rollback, restore) took, per env and outcome.")
    gates = Family("envplane_gate_results_total", "counter", "Gate results ever recorded, per env, gate and "
                   "result.")
    failing = Family("envplane_failed_gates", "gauge", "Gates that failed in each env's newest promotion "
                     "attempt.")
    for app, _ in scheduler.registered(store):
        try:
            project = registry.load(store, app, env)
            found = figures.of_app(project.root, app, env.get("ENVPLANE_STATE_URL") or None)
        except EnvplaneError:
            loaded.add(0, app=app)
            continue
        loaded.add(1, app=app)
        for (name, status), count in sorted(found.instances.items()):
            instances.add(count, app=app, env=name, status=status)
        by_kind: dict[tuple[str, str], list[float]] = {}
        for name, outcome, seconds in found.deploys:
            by_kind.setdefault((name, outcome), []).append(seconds)
        for (name, outcome), values in sorted(by_kind.items()):
            histogram(deploys, values, DEPLOY_BUCKETS, app=app, env=name, outcome=outcome)
        for (name, gate, ok), count in sorted(found.gates.items()):
            gates.add(count, app=app, env=name, gate=gate, result="passed" if ok else "failed")
        for name, count in sorted(found.failing.items()):
            failing.add(count, app=app, env=name)
    return [info, loaded, instances, deploys, gates, failing, *_jobs(store, env, moment)]


def _jobs(store: Store, environ: Mapping[str, str], now: datetime) -> list[Family]:
    from envplane.server import scheduler

    last_run = Family("envplane_job_last_run_timestamp_seconds", "gauge",
                      "When each scheduler job last started (Unix time).")
    last_success = Family("envplane_job_last_success_timestamp_seconds", "gauge",
                          "When each scheduler job last succeeded (Unix time).")
    age = Family("envplane_job_seconds_since_success", "gauge", "Seconds since each scheduler job last "
                 "succeeded (since it first ran, or the app was registered, when it never has).")
    failed = Family("envplane_job_failed", "gauge", "1 when the job's last run that ended failed or was "
                    "interrupted.")
    interval = Family("envplane_job_interval_seconds", "gauge", "Each scheduler job's interval (off: none).")
    standing = Family("envplane_alerts", "gauge", "Alerts that stand: a job that failed, is late, never "
                      "ran, or a DR alarm; one series per alert.")
    added = dict(scheduler.registered(store))
    for state in scheduler.overview(store, environ, now):
        labels: dict[str, Any] = {"app": state.app, "job": state.job}
        if state.every is None:
            continue
        interval.add(state.every.total_seconds(), **labels)
        latest = state.latest
        if latest is not None:
            last_run.add(latest.started_at.timestamp(), **labels)
            failed.add(1 if any(a.kind == "failed" for a in state.alerts) else 0, **labels)
        if state.last_success is not None:
            last_success.add(state.last_success.timestamp(), **labels)
        since = state.last_success or (latest.started_at if latest else added.get(state.app, now))
        age.add(max(0.0, (now - since).total_seconds()), **labels)
    for alert in scheduler.alerts(store, environ, now):
        standing.add(1, app=alert.app, job=alert.job, kind=alert.kind, id=alert.id)
    return [interval, last_run, last_success, age, failed, standing]


def text(store: Store, environ: Mapping[str, str] | None = None, now: datetime | None = None) -> str:
    return render(collect(store, environ, now))



router = APIRouter(responses=problems.responses(401, 403))


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}},
            summary="The server's figures for Prometheus (text format 0.0.4); needs the read scope")
def metrics(request: Request, principal: Reader) -> Response:
    ctx = context(request)
    return Response(text(store_of(ctx), ctx.environ), media_type=CONTENT_TYPE)


@router.get("/api/v1/scheduler", response_model=dict[str, Any],
            summary="The scheduler's jobs (last run, outcome, next run) and the alerts that stand")
def scheduler_jobs(request: Request, principal: Reader) -> dict[str, Any]:
    from envplane.server import scheduler

    ctx = context(request)
    store = store_of(ctx)
    return {"enabled": scheduler.enabled(ctx.environ),
            "jobs": [state.as_dict() for state in scheduler.overview(store, ctx.environ)],
            "alerts": [alert.as_dict() for alert in scheduler.alerts(store, ctx.environ)]}
