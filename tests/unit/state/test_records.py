"""#11: `status` and `plan` read a SQLite store's instances with the standard library
(records.py), and get the very records SQLAlchemy gives."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from envplane.state import instances as st
from envplane.state import records
from envplane.state.db import open_store
from envplane.state.location import state_path
from tests.unit.state.stores import FakeClock


def test_the_stdlib_read_gives_what_sqlalchemy_gives(tmp_path: Path) -> None:
    clock = FakeClock()
    store = open_store(tmp_path)
    try:
        st.upsert_instance(store, "shop", "test", "pr-2", "ok", "abc", clock=clock)
        st.upsert_instance(store, "blog", "test", "pr-1", "ok", clock=clock)
        deployment = st.start_deployment(store, "shop", "staging", "staging", "ann", data_path="/data/shop",
                                         clock=clock)
        st.finish_deployment(store, deployment.id, "ok", clock=clock)
        st.upsert_instance(store, "shop", "test", "pr-1", records.PARTIAL, clock=clock)
        st.mark_closed(store, "shop", "test", "pr-1", clock=clock)
        expected = st.list_instances(store, "shop")
    finally:
        store.close()
    read = records._sqlite(state_path(tmp_path), "shop")
    assert read == expected and len(read) == 3
    assert all(r.created_at.tzinfo is not None for r in read)
    assert records.recorded(tmp_path, "shop") == expected


def test_no_store_is_read_as_none_and_none_is_made(tmp_path: Path) -> None:
    assert records.recorded(tmp_path, "shop") == []
    assert not (tmp_path / ".envplane").exists()


def test_a_store_the_query_cannot_read_takes_sqlalchemys_path(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A store of an older schema (no data_path column yet): the full path migrates it first."""
    store = open_store(tmp_path)
    try:
        st.upsert_instance(store, "shop", "test", "pr-2", "ok", clock=FakeClock())
    finally:
        store.close()
    with sqlite3.connect(state_path(tmp_path)) as conn:
        conn.execute("ALTER TABLE instances RENAME COLUMN data_path TO gone")
    assert records._sqlite(state_path(tmp_path), "shop") is None
    calls: list[str] = []
    monkeypatch.setattr(st, "recorded_by_store", lambda spec_dir, app, url=None: calls.append(app) or [])
    assert records.recorded(tmp_path, "shop") == []
    assert calls == ["shop"]
