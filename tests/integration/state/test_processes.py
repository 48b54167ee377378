"""The state store shared by separate envplane processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from envplane.errors import LockError
from envplane.state import audit, locks
from envplane.state.db import Store, open_store
from tests.unit.state.stores import TEST_KEY, store_for

pytestmark = pytest.mark.integration
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(params=["sqlite", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, str | None]]:
    with store_for(str(request.param), tmp_path) as pair:
        yield pair


def append_many(spec_dir: str, url: str | None, worker: int, count: int) -> None:
    store = open_store(Path(spec_dir), url, TEST_KEY)
    for n in range(count):
        audit.record(store, f"worker-{worker}", "tick", "shop", "ci", f"ci-{worker}", "ok",
                     {"n": n, "pid": os.getpid()})
    store.close()


def hold_lock(spec_dir: str, url: str | None, holding: Event) -> None:
    store = open_store(Path(spec_dir), url)
    locks.acquire(store, "shop", "staging", "staging", "alice")
    holding.set()
    signal.pause()  # until killed: a deploy that crashed without releasing


def test_processes_appending_at_once_keep_one_chain(
    shared: tuple[Store, str | None], tmp_path: Path
):
    store, url = shared
    workers = [
        SPAWN.Process(target=append_many, args=(str(tmp_path), url, w, 15)) for w in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    result = audit.verify(store)
    assert (result.ok, result.rows, result.problems) == (True, 60, [])


def test_a_lock_held_by_another_process_blocks_until_that_process_dies(
    shared: tuple[Store, str | None], tmp_path: Path
):
    store, url = shared
    holding = SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(tmp_path), url, holding))
    holder.start()
    try:
        assert holding.wait(timeout=60)
        with pytest.raises(LockError, match=rf"locked by alice \(pid {holder.pid} on "):
            locks.acquire(store, "shop", "staging", "staging", "bob")
        with locks.acquire(store, "shop", "test", "pr-1", "bob"):
            pass  # another instance is not blocked
    finally:
        holder.kill()
        holder.join()
    with locks.acquire(store, "shop", "staging", "staging", "bob") as lock:
        assert lock.note.endswith("that process is gone")


def test_a_postgres_store_names_itself_without_the_password(
    shared: tuple[Store, str | None],
):
    store, url = shared
    if url is None:
        assert store.where.endswith("/.envplane/state.db")
        return
    assert store.where == make_url(url).render_as_string(hide_password=True)
    assert ":***@" in store.where
