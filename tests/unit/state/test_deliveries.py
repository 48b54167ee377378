"""#9.16: webhook delivery ids are remembered in the state store, so a repeat is seen as one."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from envplane.state import deliveries
from envplane.state.db import Store, open_store
from tests.unit.state.stores import FakeClock


def test_a_delivery_is_new_once(store: Store, clock: FakeClock) -> None:
    assert deliveries.first_time(store, "shop", "72d3162e-cc78-11e3-81ab-4c9367dc0958", clock=clock)
    assert not deliveries.first_time(store, "shop", "72d3162e-cc78-11e3-81ab-4c9367dc0958", clock=clock)
    assert deliveries.first_time(store, "shop", "another", clock=clock)


def test_two_apps_behind_one_hook_each_take_the_delivery(store: Store, clock: FakeClock) -> None:
    assert deliveries.first_time(store, "shop", "d-1", clock=clock)
    assert deliveries.first_time(store, "blog", "d-1", clock=clock)


def test_a_restarted_server_still_knows_recent_deliveries(tmp_path: Path, clock: FakeClock) -> None:
    first = open_store(tmp_path)
    assert deliveries.first_time(first, "shop", "d-1", clock=clock)
    first.close()
    again = open_store(tmp_path)
    try:
        assert not deliveries.first_time(again, "shop", "d-1", clock=clock)
    finally:
        again.close()


def test_old_deliveries_are_forgotten_after_the_retention(store: Store, clock: FakeClock) -> None:
    assert deliveries.first_time(store, "shop", "d-old", clock=clock)
    clock.now += deliveries.RETENTION + timedelta(minutes=1)
    assert deliveries.first_time(store, "shop", "d-new", clock=clock)  # prunes d-old
    assert deliveries.count(store) == 1


def test_the_same_delivery_at_once_from_many_threads_is_new_exactly_once(store: Store) -> None:
    results: list[bool] = []
    gate = threading.Barrier(8)

    def take() -> None:
        gate.wait()
        results.append(deliveries.first_time(store, "shop", "race"))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
