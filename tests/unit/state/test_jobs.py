"""#14: the server's jobs in the state store — a job, its outcome and its events are still
there for a new server on the same store (SQLite, and PostgreSQL marked integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from envplane.events import Note, StepFinished, StepStarted
from envplane.secret import Secret, masking
from envplane.server.jobs import Jobs
from envplane.state import jobs as saved
from envplane.state.db import Store

AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_a_job_and_its_events_are_read_back_by_another_server(store: Store) -> None:
    first = Jobs(store=store, server="vps-1")

    def work(report: object) -> dict[str, str]:
        assert callable(report)
        report(StepStarted("start", "start web"))
        report(StepFinished("start", "start web", "ok", 0.5))
        return {"instance": "pr-6"}

    job = first.start("up", "shop", "test", "pr-6", "token:ci", work)
    assert first.wait(10)
    again = Jobs(store=store, server="vps-1").get(job.id)
    assert again is not None and again.summary() == job.summary()
    assert again.since(0) == (job.events, True)
    assert again.since(1) == (job.events[1:], True)  # Last-Event-ID 1
    assert [j.id for j in Jobs(store=store).all()] == [job.id]


def test_a_failed_job_keeps_its_problem(store: Store) -> None:
    jobs = Jobs(store=store)

    def work(report: object) -> None:
        raise RuntimeError("a bug")

    job = jobs.start("down", "shop", "test", None, "alice", work)
    assert jobs.wait(10)
    [again] = Jobs(store=store).all()
    assert (again.state, again.problem) == ("failed", job.problem) and again.problem is not None
    assert again.problem["status"] == 500


def test_events_are_kept_masked(store: Store) -> None:
    jobs = Jobs(store=store)
    with masking():
        value = Secret("hunter2-very-secret")

        def work(report: object) -> None:
            assert callable(report)
            report(Note(f"connecting with {value.reveal()}"))

        job = jobs.start("up", "shop", "test", None, "alice", work)
        assert jobs.wait(10)
    kept = saved.events(store, job.id)
    assert "hunter2" not in str(kept) and "***" in kept[0]["message"]


def test_jobs_left_running_by_a_dead_server_are_interrupted_when_it_starts(store: Store) -> None:
    saved.add(store, "a" * 32, "up", "shop", "staging", "staging", "alice", "vps-1", AT)
    saved.add_event(store, "a" * 32, 1, {"type": "note", "message": "pulling"})
    saved.add(store, "b" * 32, "up", "shop", "test", "pr-1", "bob", "vps-2", AT)  # another host's: it may run
    assert [j.id for j in Jobs(store=store, server="vps-1").interrupt_left()] == ["a" * 32]
    job = Jobs(store=store, server="vps-1").get("a" * 32)
    assert job is not None and job.state == "interrupted" and job.finished_at is not None
    assert job.problem is not None and "server stopped" in job.problem["detail"]
    assert job.since(0) == ([{"type": "note", "message": "pulling", "seq": 1}], True)
    other = saved.get(store, "b" * 32)
    assert other is not None and other.state == "running"


def test_a_job_of_another_server_process_on_this_host_is_interrupted_only_once_that_process_is_gone(
        store: Store) -> None:
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        saved.add(store, "a" * 32, "up", "shop", "test", "pr-1", "alice", saved.this_server(gone.pid), AT)
        saved.add(store, "b" * 32, "up", "shop", "test", "pr-2", "bob", saved.this_server(alive.pid), AT)
        saved.add(store, "c" * 32, "up", "shop", "test", "pr-3", "carol",
                  saved.this_server().replace(" boot ", " boot x"), AT)  # this host before a reboot
        assert sorted(j.id for j in Jobs(store=store).interrupt_left()) == ["a" * 32, "c" * 32]
        still = saved.get(store, "b" * 32)
        assert still is not None and still.state == "running"
    finally:
        alive.kill()
        alive.wait()


def test_only_the_newest_finished_jobs_are_kept_with_their_events(store: Store) -> None:
    for n in range(5):
        job_id = f"{n:032x}"
        saved.add(store, job_id, "up", "shop", "test", None, "alice", "vps-1", AT + timedelta(seconds=n))
        saved.add_event(store, job_id, 1, {"type": "note", "message": str(n)})
    saved.add(store, "f" * 32, "up", "shop", "test", None, "alice", "vps-1", AT - timedelta(days=1))
    for n in range(5):
        saved.finish(store, f"{n:032x}", "ok", AT + timedelta(minutes=1), {"n": n}, None, keep=2)
    # the running one (oldest) stays; of the finished, the newest two
    assert [r.id for r in saved.listing(store)] == [f"{4:032x}", f"{3:032x}", "f" * 32]
    assert saved.events(store, f"{0:032x}") == []
    assert saved.listing(store, app="other") == []


def test_a_job_lists_how_many_events_it_has(store: Store) -> None:
    saved.add(store, "c" * 32, "release", "shop", None, None, "alice", "vps-1", AT)
    for seq in (1, 2, 3):
        saved.add_event(store, "c" * 32, seq, {"type": "note", "message": str(seq)})
    [record] = saved.listing(store)
    assert record.events == 3 and saved.get(store, "c" * 32).events == 3  # type: ignore[union-attr]
    assert [e["message"] for e in saved.events(store, "c" * 32, after=1)] == ["2", "3"]


def test_a_job_refused_as_busy_leaves_nothing_in_the_store(store: Store) -> None:
    import threading

    import pytest

    from envplane.server.problems import Busy

    jobs, release = Jobs(store=store, max_running=1), threading.Event()
    held = jobs.start("up", "shop", "test", None, "alice", lambda report: release.wait(10) and None)
    with pytest.raises(Busy):
        jobs.start("up", "shop", "test", None, "bob", lambda report: None)
    release.set()
    assert jobs.wait(10)
    assert [(r.id, r.state) for r in saved.listing(store)] == [(held.id, "ok")]


def test_every_event_of_a_chatty_job_is_in_the_store_in_order_when_it_ends(store: Store) -> None:
    jobs = Jobs(store=store)

    def work(report: object) -> None:
        assert callable(report)
        for n in range(1200):  # more than one batch
            report(Note(f"line {n}"))

    job = jobs.start("up", "shop", "test", None, "alice", work)
    assert jobs.wait(60)
    kept = saved.events(store, job.id)
    assert [e["seq"] for e in kept] == list(range(1, 1201)) and kept == job.events
