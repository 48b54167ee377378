"""#14: long operations run as jobs: a thread of their own, events numbered from 1 and read
again from any number, an outcome for every way they end."""

from __future__ import annotations

import asyncio
import threading

import pytest

from envplane.errors import BackendError, Interrupted, NothingToDo
from envplane.events import Event, Note, StepFinished, StepStarted
from envplane.secret import Secret, masking
from envplane.server.jobs import Jobs
from envplane.server.problems import Busy


def wait_done(jobs: Jobs) -> None:
    assert jobs.wait(10)


def test_a_job_keeps_its_events_in_order_and_its_result() -> None:
    jobs = Jobs()

    def work(report: object) -> dict[str, str]:
        assert callable(report)
        report(StepStarted("start", "start web"))
        report(StepFinished("start", "start web", "ok", 0.5))
        return {"instance": "pr-6"}

    job = jobs.start("up", "shop", "test", "pr-6", "token:ci", work)
    wait_done(jobs)
    assert job.state == "ok" and job.result == {"instance": "pr-6"}
    assert [(e["seq"], e["type"]) for e in job.events] == [(1, "step_started"), (2, "step_finished")]
    assert job.since(1) == (job.events[1:], True)  # from Last-Event-ID 1 on
    assert job.summary()["by"] == "token:ci" and job.finished_at is not None


@pytest.mark.parametrize(("raised", "state", "status"), [
    (BackendError("docker does not answer", "start dockerd"), "failed", 502),
    (Interrupted("up of pr-6 stopped at start", "run it again"), "interrupted", 409),
    (RuntimeError("a bug"), "failed", 500),
])
def test_a_job_that_fails_says_why_as_the_api_would(raised: BaseException, state: str, status: int) -> None:
    jobs = Jobs()

    def work(report: object) -> None:
        raise raised

    job = jobs.start("up", "shop", "test", None, "alice", work)
    wait_done(jobs)
    assert job.state == state and job.problem is not None and job.problem["status"] == status


def test_nothing_to_do_is_an_outcome_not_a_failure() -> None:
    jobs = Jobs()

    def work(report: object) -> None:
        raise NothingToDo("nothing of pr-9 is here", "")

    job = jobs.start("down", "shop", "test", "pr-9", "alice", work)
    wait_done(jobs)
    assert job.state == "nothing" and job.result == {"message": "nothing of pr-9 is here", "hint": ""}


def test_event_text_is_masked() -> None:
    jobs = Jobs()
    with masking():
        value = Secret("hunter2-very-secret")

        def work(report: object) -> None:
            assert callable(report)
            report(Note(f"connecting with {value.reveal()}"))

        job = jobs.start("up", "shop", "test", None, "alice", work)
        wait_done(jobs)
    assert "hunter2" not in str(job.events) and "***" in job.events[0]["message"]


def test_on_end_hears_every_job_once_it_ended() -> None:
    jobs, ended = Jobs(), []
    job = jobs.start("up", "shop", "test", None, "alice", lambda report: None,
                     on_end=lambda j: ended.append((j.id, j.state)))
    wait_done(jobs)
    assert ended == [(job.id, "ok")]


def test_too_many_running_jobs_are_refused_not_queued() -> None:
    jobs, release = Jobs(max_running=2), threading.Event()
    for _ in range(2):
        jobs.start("up", "shop", "test", None, "alice", lambda report: release.wait(10))
    with pytest.raises(Busy):
        jobs.start("up", "shop", "test", None, "alice", lambda report: None)
    release.set()
    wait_done(jobs)
    jobs.start("up", "shop", "test", None, "alice", lambda report: None)  # room again


def test_only_the_newest_finished_jobs_are_kept() -> None:
    jobs = Jobs(keep=3)
    made = []
    for _ in range(6):
        made.append(jobs.start("up", "shop", "test", None, "alice", lambda report: None))
        wait_done(jobs)
    assert [j.id for j in jobs.all()][-3:] == [j.id for j in made[-3:]]
    assert len(jobs.all()) <= 4  # the newest three finished, and the one just started


def test_a_watcher_in_the_event_loop_wakes_when_an_event_comes() -> None:
    jobs, go = Jobs(), threading.Event()

    def work(report: object) -> None:
        assert callable(report)
        go.wait(10)
        report(Note("hello"))

    job = jobs.start("up", "shop", "test", None, "alice", work)

    async def watch() -> list[Event | dict[str, object]]:
        waiting = asyncio.create_task(job.changed(30))
        await asyncio.sleep(0.05)
        go.set()
        await asyncio.wait_for(waiting, 5)  # woken by the event, long before the 30 s timeout
        return job.since(0)[0]

    seen = asyncio.run(watch())
    wait_done(jobs)
    assert seen and seen[0]["message"] == "hello"
