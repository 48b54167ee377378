"""#14: the events service operations report (plain, JSON-able), the adapter from the inner
step and wait hooks, and how the CLI draws them (live on a terminal, periodic when piped)."""

from __future__ import annotations

import io
import json
import time

from rich.console import Console

from envplane.cli.progress import Drawer
from envplane.events import (
    LogLine,
    Note,
    Progress,
    StepFinished,
    StepStarted,
    Waiting,
    as_dict,
    line,
)
from envplane.plan import Step


def test_progress_turns_steps_and_waits_into_events_that_are_json() -> None:
    seen: list[object] = []
    progress = Progress(seen.append)
    step = Step("health", "check", "wait until web answers /health", "web")
    progress.waiting("lock", "alice holds it")  # no step runs: a note
    progress.step(step, "start", 0.0)
    progress.waiting("web", "GET /health → HTTP 503")
    progress.step(step, "ok", 1.23456)
    progress.log("web", "listening on 8080")
    kinds = [type(e).__name__ for e in seen]
    assert kinds == ["Note", "StepStarted", "Waiting", "StepFinished", "LogLine"]
    waiting = seen[2]
    assert isinstance(waiting, Waiting)
    assert (waiting.step, waiting.subject, waiting.detail) == ("health", "web", "GET /health → HTTP 503")
    assert seen[3] == StepFinished("health", "wait until web answers /health", "ok", 1.235, "web")
    decoded = [json.loads(json.dumps(as_dict(e))) for e in seen]  # type: ignore[arg-type]
    assert [d["type"] for d in decoded] == ["note", "step_started", "waiting", "step_finished", "log"]
    assert decoded[3] == {"step": "health", "description": "wait until web answers /health", "state": "ok",
                          "seconds": 1.235, "resource": "web", "at": decoded[3]["at"],
                          "type": "step_finished"}


def test_each_event_reads_as_one_plain_line() -> None:
    assert line(StepFinished("start", "start Compose project shop-staging", "ok", 1.5)) == (
        "✓ start Compose project shop-staging 1.5s")
    assert line(StepFinished("start", "start Compose project shop-staging", "interrupted", 3.0)) == (
        "✗ start Compose project shop-staging 3.0s interrupted")
    assert line(Waiting("health", "wait until web answers /health", "web", "GET /health → HTTP 404", 12.4)) == (
        "… wait until web answers /health (12 s) — web: GET /health → HTTP 404")
    assert line(Note("waiting: alice holds this instance", "warning")) == "waiting: alice holds this instance"
    assert line(LogLine("web", "ready")) == "web | ready"


def console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=200, highlight=False), buffer


def test_piped_a_running_step_prints_a_plain_line_every_period_with_what_it_waits_on() -> None:
    cons, buffer = console()
    drawer = Drawer(cons, live=False, every=0.2)
    drawer(StepStarted("health", "wait until web answers /health", "web"))
    drawer(Waiting("health", "wait until web answers /health", "web", "GET /health → HTTP 503", 0.1))
    time.sleep(0.5)
    drawer(StepFinished("health", "wait until web answers /health", "ok", 0.5, "web"))
    time.sleep(0.3)  # no line once the step ended
    drawer.close()
    lines = buffer.getvalue().splitlines()
    periodic = [x for x in lines if x.startswith("  … ")]
    assert len(periodic) >= 2
    assert all(x.endswith("— web: GET /health → HTTP 503") for x in periodic), lines
    assert lines[-1] == "✓ wait until web answers /health 0.5s"


def test_on_a_terminal_the_running_line_counts_up_and_goes_when_the_step_ends() -> None:
    now = [100.0]
    cons, buffer = console()
    drawer = Drawer(cons, live=False, every=3600, clock=lambda: now[0])
    drawer(StepStarted("start", "start Compose project shop-staging"))
    now[0] += 12.2
    assert drawer.current() == "start Compose project shop-staging (12 s)"
    drawer(Waiting("start", "start Compose project shop-staging", "web", "pulling", 12.2))
    assert drawer.current() == "start Compose project shop-staging (12 s) — web: pulling"
    drawer(StepFinished("start", "start Compose project shop-staging", "failed", 12.2))
    assert drawer.current() == ""
    assert buffer.getvalue() == "✗ start Compose project shop-staging 12.2s\n"
