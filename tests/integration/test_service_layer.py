"""#14: the service layer on a real engine: `up` reports every step, its timing and what a
step waits on through one callback, as JSON-able events, and prints nothing."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane import actions
from envplane.events import Event, StepFinished, StepStarted, Waiting, as_dict
from envplane.secret import masking
from envplane.service import instances
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[actions.Project]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    monkeypatch.setenv("DATA_PATH", "")
    busybox_app(tmp_path, f"sv{uuid.uuid4().hex[:6]}", free_port_block())
    loaded = actions.open_project(tmp_path, os.environ)
    yield loaded
    cli("down", "test", "--pr", "6", "--purge", cwd=tmp_path)


def test_up_reports_every_step_through_the_callback_and_prints_nothing(
        project: actions.Project, capfd: pytest.CaptureFixture[str]) -> None:
    seen: list[Event] = []
    with masking():
        done = instances.up(project, "test", 6, report=seen.append)
    assert (done.app, done.instance) == (project.app, "pr-6")
    started = [e for e in seen if isinstance(e, StepStarted)]
    finished = [e for e in seen if isinstance(e, StepFinished)]
    # Every step that ran started and finished, in the plan's order, with its time.
    assert [e.step for e in started] == [e.step for e in finished if e.step != "lock"]
    # the pre-flight trial is skipped: nothing of a new instance runs to protect
    assert [(e.step, e.state) for e in finished if e.state != "ok"] == [("trial", "skip")]
    assert [(k, s) for k, s, _ in done.steps] == [(e.step, e.state) for e in finished]
    assert {"start", "health", "record"} <= {e.step for e in finished}
    # What the health step waited on, and for how long.
    waits = [e for e in seen if isinstance(e, Waiting)]
    assert waits and {(w.step, w.subject) for w in waits} == {("health", "web")}
    assert all(w.detail.startswith("GET /health.txt → ") for w in waits)
    # Every event is plain data a server can stream.
    assert all(json.loads(json.dumps(as_dict(e)))["type"] for e in seen)
    assert done.as_dict()["urls"] == dict(done.urls) and done.urls
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # the service layer never prints
