"""Instance locks: one holder per (app, env, instance); other instances never wait."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import timedelta

import pytest

from envplane.errors import LockError
from envplane.state import locks
from envplane.state.db import Store
from tests.unit.state.stores import FakeClock


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_lock_is_held_until_released(store: Store):
    lock = locks.acquire(store, "shop", "staging", "staging", "alice")
    assert locks.holder_of(store, "shop", "staging", "staging") == lock.holder
    assert lock.release() is True
    assert locks.holder_of(store, "shop", "staging", "staging") is None
    assert lock.release() is False


def test_the_context_manager_releases_even_on_error(store: Store):
    with pytest.raises(RuntimeError), locks.acquire(store, "shop", "test", "pr-1", "alice"):
        raise RuntimeError("deploy failed")
    assert locks.holder_of(store, "shop", "test", "pr-1") is None


def test_a_second_holder_without_wait_fails_naming_the_first(store: Store):
    first = locks.acquire(store, "shop", "staging", "staging", "alice")
    with pytest.raises(LockError) as caught:
        locks.acquire(store, "shop", "staging", "staging", "bob")
    first.release()
    assert caught.value.message.startswith("shop/staging/staging is locked by alice (pid ")
    assert "--wait" in caught.value.hint


def test_a_second_holder_gives_up_after_the_timeout(store: Store):
    seen: list[locks.Holder] = []
    first = locks.acquire(store, "shop", "staging", "staging", "alice")
    with pytest.raises(LockError, match=r"locked by alice .*gave up after 0.3s"):
        locks.acquire(store, "shop", "staging", "staging", "bob", wait=True, timeout=0.3,
                      on_wait=seen.append)
    assert seen == [first.holder]


def test_a_waiting_holder_gets_the_lock_when_it_is_released(store: Store):
    first = locks.acquire(store, "shop", "staging", "staging", "alice")
    releaser = threading.Timer(0.3, first.release)
    releaser.start()
    waited: list[locks.Holder] = []
    started = time.monotonic()
    with locks.acquire(store, "shop", "staging", "staging", "bob", wait=True, timeout=10,
                       on_wait=waited.append) as second:
        assert second.holder.holder == "bob"
    releaser.join()
    assert time.monotonic() - started >= 0.25
    assert [h.holder for h in waited] == ["alice"]


def test_different_instances_never_block_each_other(store: Store):
    with (
        locks.acquire(store, "shop", "test", "pr-1", "alice"),
        locks.acquire(store, "shop", "test", "pr-2", "bob"),
        locks.acquire(store, "shop", "staging", "staging", "carol"),
        locks.acquire(store, "blog", "test", "pr-1", "dave"),
    ):
        holders = [locks.holder_of(store, "shop", "test", f"pr-{n}") for n in (1, 2)]
        assert [h.holder for h in holders if h] == ["alice", "bob"]


def test_an_expired_lease_is_taken_over_with_a_note(store: Store, clock: FakeClock):
    stale = locks.acquire(store, "shop", "staging", "staging", "alice", ttl=10, clock=clock)
    clock.now += timedelta(seconds=11)
    with locks.acquire(store, "shop", "staging", "staging", "bob", clock=clock) as lock:
        assert lock.note.startswith("took over the lock of alice (pid ")
        assert lock.note.endswith(": its lease expired")
        assert stale.release() is False  # alice must not free bob's lock
        assert locks.holder_of(store, "shop", "staging", "staging") == lock.holder


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over(store: Store):
    pid = dead_pid()
    locks.acquire(store, "shop", "test", "pr-9", "alice", me=locks.Me("alice", pid=pid))
    with locks.acquire(store, "shop", "test", "pr-9", "bob") as lock:
        assert lock.note.endswith("that process is gone")
        assert f"pid {pid}" in lock.note


def test_a_lock_of_another_host_is_not_judged_by_its_pid(store: Store):
    other = locks.Me("alice", pid=dead_pid(), host="build-02")
    locks.acquire(store, "shop", "test", "pr-9", "alice", me=other)
    with pytest.raises(LockError, match=r"locked by alice \(pid \d+ on build-02"):
        locks.acquire(store, "shop", "test", "pr-9", "bob")


def test_renew_pushes_the_lease_out(store: Store, clock: FakeClock):
    lock = locks.acquire(store, "shop", "staging", "staging", "alice", ttl=10, clock=clock)
    locks.renew(lock, ttl=100, clock=clock)
    clock.now += timedelta(seconds=50)
    with pytest.raises(LockError, match="locked by alice"):
        locks.acquire(store, "shop", "staging", "staging", "bob", clock=clock)


def test_renew_of_a_lock_taken_over_fails(store: Store, clock: FakeClock):
    lock = locks.acquire(store, "shop", "staging", "staging", "alice", ttl=1, clock=clock)
    clock.now += timedelta(seconds=5)
    locks.acquire(store, "shop", "staging", "staging", "bob", clock=clock)
    with pytest.raises(LockError, match="no longer held by alice"):
        locks.renew(lock, clock=clock)


def test_many_threads_racing_for_one_instance_get_it_one_at_a_time(store: Store):
    inside = 0
    most = 0
    guard = threading.Lock()

    def work(n: int) -> None:
        nonlocal inside, most
        with locks.acquire(store, "shop", "staging", "staging", f"w{n}", wait=True, timeout=30):
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.02)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
    assert locks.holder_of(store, "shop", "staging", "staging") is None
