"""Instance locks: one holder per (app, env, instance); other instances never wait."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from envplane.errors import LockError
from envplane.state import locks
from envplane.state.clock import as_utc
from envplane.state.db import Store
from envplane.state.models import LockRow
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
    # #10.9: the hint names a flag that exists; waiting is the CLI's default, --no-wait is not.
    assert caught.value.hint == ("wait for that operation to finish, or run again without --no-wait "
                                 "to wait for it")


def test_a_second_holder_gives_up_after_the_timeout(store: Store):
    seen: list[locks.Holder] = []
    first = locks.acquire(store, "shop", "staging", "staging", "alice")
    with pytest.raises(LockError, match=r"locked by alice .*gave up after 0.3s") as caught:
        locks.acquire(store, "shop", "staging", "staging", "bob", wait=True, timeout=0.3,
                      on_wait=seen.append)
    assert seen == [first.holder]
    # #10.9: it waited (no --no-wait was passed): the hint names no flag.
    assert caught.value.hint == ("that operation is still running: wait for it to finish and run again "
                                 "(a lock whose holder died is taken over at once)")


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


def test_a_lock_of_a_live_process_whose_pid_was_reused_is_taken_over(store: Store):
    """Same kernel, same PID namespace, the pid alive but started at another moment: the
    holder died and its number went to another process."""
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            reused = locks.Me("alice", pid=other.pid, started=1)  # not when `sleep` started
            locks.acquire(store, "shop", "test", "pr-9", "alice", me=reused)
            with locks.acquire(store, "shop", "test", "pr-9", "bob") as lock:
                assert lock.note.endswith("that process is gone (its pid was reused)")
        finally:
            other.kill()


def test_a_lock_of_a_live_process_of_this_pid_namespace_is_kept(store: Store):
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            locks.acquire(store, "shop", "test", "pr-9", "alice", me=locks.Me.this("alice", pid=other.pid))
            with pytest.raises(LockError, match=rf"locked by alice \(pid {other.pid} on "):
                locks.acquire(store, "shop", "test", "pr-9", "bob")
        finally:
            other.kill()


def test_a_lock_of_another_pid_namespace_with_our_hostname_is_left_to_its_lease(
    store: Store, clock: FakeClock
):
    """#9.12: CI containers share a hostname (and a state store) but not a PID namespace;
    a pid that is free here says nothing about the holder there."""
    other = locks.Me("alice", pid=dead_pid(), pid_ns="pid:[4026530000]")
    locks.acquire(store, "shop", "test", "pr-9", "alice", me=other, ttl=60, clock=clock)
    with pytest.raises(LockError, match="locked by alice"):
        locks.acquire(store, "shop", "test", "pr-9", "bob", clock=clock)
    clock.now += timedelta(seconds=61)
    with locks.acquire(store, "shop", "test", "pr-9", "bob", clock=clock) as lock:
        assert lock.note.endswith("its lease expired")


def test_a_lock_written_before_a_reboot_is_left_to_its_lease(store: Store, clock: FakeClock):
    """Another boot id: another machine, or this one before a reboot; pids mean nothing."""
    other = locks.Me("alice", pid=dead_pid(), boot_id="0f0e0d0c-0000-4000-8000-000000000000")
    locks.acquire(store, "shop", "test", "pr-9", "alice", me=other, ttl=60, clock=clock)
    with pytest.raises(LockError, match="locked by alice"):
        locks.acquire(store, "shop", "test", "pr-9", "bob", clock=clock)


def test_a_lock_of_another_host_is_not_judged_by_its_pid(store: Store):
    other = locks.Me("alice", pid=dead_pid(), host="build-02",
                     boot_id="5a1d8f0e-0000-4000-8000-000000000002")
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


def test_check_passes_while_held_and_names_the_new_holder_once_taken_over(
    store: Store, clock: FakeClock
):
    lock = locks.acquire(store, "shop", "staging", "staging", "alice", ttl=1, clock=clock)
    lock.check()
    clock.now += timedelta(seconds=5)
    locks.acquire(store, "shop", "staging", "staging", "bob", clock=clock)
    with pytest.raises(LockError) as caught:
        lock.check()
    assert caught.value.message.startswith(
        "the lock of shop/staging/staging was taken over by bob (pid ")
    assert "alice stopped" in caught.value.message
    assert caught.value.hint == "check what bob did to the instance, then run the command again"


class StoppedClock:
    """A clock that moves only when the test moves it (shared by the heartbeat's thread)."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_heartbeat_keeps_a_short_lease_alive_through_a_long_operation(store: Store):
    """Three leases pass, half a lease at a time; after each step the test waits for the
    heartbeat to renew at the new time. With the real clock a loaded machine could run the
    thread later than the 1 s lease allowed — a race of the test, not of a 300 s lease."""
    clock = StoppedClock()
    with (
        locks.acquire(store, "shop", "staging", "staging", "alice", ttl=1.0, clock=clock) as lock,
        locks.heartbeat(lock, ttl=1.0, interval=0.01, clock=clock),
    ):
        for _ in range(6):
            clock.now += timedelta(seconds=0.5)
            renewed_at = clock.now + timedelta(seconds=1.0)
            deadline = time.monotonic() + 60  # a hung heartbeat, not a slow one, fails here
            while as_utc(locks.holder_of(store, "shop", "staging", "staging").expires_at) < renewed_at:
                assert time.monotonic() < deadline, "the heartbeat never renewed the lease"
                time.sleep(0.01)
            with pytest.raises(LockError, match="locked by alice"):
                locks.acquire(store, "shop", "staging", "staging", "bob", clock=clock)
        lock.check()
    assert locks.holder_of(store, "shop", "staging", "staging") is None


def test_without_a_heartbeat_the_same_short_lease_runs_out(store: Store):
    locks.acquire(store, "shop", "staging", "staging", "alice", ttl=1.0)
    time.sleep(1.2)
    with locks.acquire(store, "shop", "staging", "staging", "bob") as lock:
        assert lock.note.endswith("its lease expired")


def test_a_heartbeat_that_finds_the_lock_taken_over_stops_and_check_says_so(store: Store):
    lock = locks.acquire(store, "shop", "staging", "staging", "alice", ttl=1.0)
    with locks.heartbeat(lock, ttl=1.0, interval=0.05) as beat:
        take_over(store, "bob")
        beat.join(timeout=10)  # the thread ends once it finds the lock gone
        assert not beat.is_alive()
        assert beat.lost is not None and "no longer held by alice" in beat.lost.message
        with pytest.raises(LockError, match="taken over by bob"):
            lock.check()


def take_over(store: Store, who: str) -> locks.Lock:
    """What a holder elsewhere does once it judged our lease expired."""
    with store.session() as session:
        session.execute(delete(LockRow))
    return locks.acquire(store, "shop", "staging", "staging", who)
