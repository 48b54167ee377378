"""#14: status answers shared by concurrent readers: made once, given from memory while
young, given while old only as long as a background refresh makes the next one."""

from __future__ import annotations

import threading
import time

from envplane.server.api import Snapshots


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_readers_share_one_making() -> None:
    snapshots, calls, go = Snapshots(), [], threading.Event()

    def make() -> str:
        calls.append(1)
        go.wait(5)
        return "rows"

    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(snapshots.get("k", make))) for _ in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    go.set()
    for thread in threads:
        thread.join(5)
    assert answers == ["rows"] * 20 and len(calls) == 1


def test_an_old_answer_is_given_while_one_refresh_makes_the_next() -> None:
    clock, made = Clock(), []
    snapshots = Snapshots(max_age=1.0, max_stale=10.0, clock=clock)
    release = threading.Event()

    def make() -> int:
        made.append(1)
        if len(made) > 1:
            release.wait(5)
        return len(made)

    assert snapshots.get("k", make) == 1
    assert snapshots.cached("k", make) == (True, 1)  # young: from memory
    clock.now += 2  # old, not too old: given at once, and one refresh starts
    assert snapshots.cached("k", make) == (True, 1)
    assert snapshots.cached("k", make) == (True, 1)  # a second reader starts no second refresh
    release.set()
    deadline = time.monotonic() + 5
    while snapshots.cached("k", make) != (True, 2):
        assert time.monotonic() < deadline, "the refresh never landed"
        time.sleep(0.01)
    assert len(made) == 2


def test_a_too_old_answer_is_made_again_by_the_reader() -> None:
    clock = Clock()
    snapshots = Snapshots(max_age=1.0, max_stale=10.0, clock=clock)
    assert snapshots.get("k", lambda: "first") == "first"
    clock.now += 11
    assert snapshots.cached("k", lambda: "second") == (False, None)
    assert snapshots.get("k", lambda: "second") == "second"


def test_a_failed_making_is_not_kept() -> None:
    snapshots = Snapshots()

    def broken() -> str:
        raise RuntimeError("docker does not answer")

    for _ in range(2):  # the next reader tries again
        try:
            snapshots.get("k", broken)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the error was swallowed")
    assert snapshots.get("k", lambda: "rows") == "rows"
