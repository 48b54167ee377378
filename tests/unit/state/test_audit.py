"""The audit log: a hash chain that names the row a person edited, deleted or moved."""

from __future__ import annotations

import getpass
import hashlib
import threading
from datetime import datetime

import pytest
from sqlalchemy import text

from envplane.secret import Secret
from envplane.state import audit
from envplane.state.db import Store
from tests.unit.state.stores import FakeClock


def write(store: Store, clock: FakeClock, count: int) -> list[audit.AuditEntry]:
    return [
        audit.record(store, "alice", f"deploy-{n}", "shop", "staging", "staging", "ok",
                     {"step": n, "ref": "v1.0.4"}, clock=clock)
        for n in range(1, count + 1)
    ]


def raw(store: Store, statement: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement))


def test_first_row_hash_is_sha256_of_zeros_and_canonical_json(store: Store, clock: FakeClock):
    entry = audit.record(store, "alice", "up", "shop", "test", "pr-7", "ok", {"b": 1, "a": [1]},
                         clock=clock)
    row_json = (
        '{"action":"up","actor":"alice","app":"shop","at":"2024-05-01T12:00:01.000000Z",'
        '"detail":{"a":[1],"b":1},"env":"test","id":1,"instance":"pr-7","outcome":"ok"}'
    )
    assert entry.prev_hash == "0" * 64
    assert entry.hash == hashlib.sha256(("0" * 64 + row_json).encode()).hexdigest()


def test_each_row_chains_to_the_previous(store: Store, clock: FakeClock):
    first, second, third = write(store, clock, 3)
    assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)
    assert [e.id for e in audit.entries(store)] == [1, 2, 3]
    assert [e.id for e in audit.entries(store, limit=2)] == [2, 3]


def test_an_untouched_log_verifies(store: Store, clock: FakeClock):
    entries = write(store, clock, 5)
    assert audit.verify(store) == audit.VerifyResult(True, 5, [], entries[-1].hash)


def test_an_empty_log_verifies(store: Store):
    assert audit.verify(store) == audit.VerifyResult(True, 0, [], audit.GENESIS)


def test_stored_rows_read_back_with_the_same_values(store: Store, clock: FakeClock):
    written = audit.record(store, "bob", "promote", None, None, None, "failed",
                           {"n": 1.5, "ok": False, "none": None, "deep": {"x": ["é"]}},
                           clock=clock)
    assert audit.entries(store) == [written]
    assert isinstance(written.at, datetime) and written.at.utcoffset() is not None


def test_a_row_edited_by_hand_is_named(store: Store, clock: FakeClock):
    write(store, clock, 4)
    raw(store, "UPDATE audit_log SET actor = 'mallory' WHERE id = 2")
    result = audit.verify(store)
    assert not result.ok
    assert result.problems == ["audit row 2 (deploy-2 by mallory): hash mismatch (the row was edited)"]


def test_an_edited_detail_is_named(store: Store, clock: FakeClock):
    write(store, clock, 3)
    raw(store, """UPDATE audit_log SET detail = '{"step": 3, "ref": "v9"}' WHERE id = 3""")
    assert audit.verify(store).problems == [
        "audit row 3 (deploy-3 by alice): hash mismatch (the row was edited)"
    ]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(store: Store, clock: FakeClock):
    write(store, clock, 3)
    raw(store, "UPDATE audit_log SET outcome = 'ok-ish', hash = '" + "f" * 64 + "' WHERE id = 2")
    problems = audit.verify(store).problems
    assert problems[-1].startswith("audit row 3 (deploy-3 by alice): prev_hash does not match row 2")


def test_a_deleted_row_is_named_by_the_gap(store: Store, clock: FakeClock):
    write(store, clock, 4)
    raw(store, "DELETE FROM audit_log WHERE id = 2")
    result = audit.verify(store)
    assert (result.ok, result.rows) == (False, 3)
    assert result.problems == ["audit row 3 (deploy-3 by alice): row 2 missing before it (deleted)"]


def test_deleted_first_rows_are_named(store: Store, clock: FakeClock):
    write(store, clock, 4)
    raw(store, "DELETE FROM audit_log WHERE id IN (1, 2)")
    assert audit.verify(store).problems == [
        "audit row 3 (deploy-3 by alice): rows 1-2 missing before it (deleted)"
    ]


def test_reordered_rows_are_named(store: Store, clock: FakeClock):
    write(store, clock, 4)
    raw(store, "UPDATE audit_log SET id = 100 WHERE id = 2")
    raw(store, "UPDATE audit_log SET id = 2 WHERE id = 3")
    raw(store, "UPDATE audit_log SET id = 3 WHERE id = 100")
    problems = audit.verify(store).problems
    assert problems[0].startswith("audit row 2 (deploy-3 by alice): prev_hash does not match row 1")


def test_appending_after_tampering_keeps_chaining_from_the_stored_last_row(
    store: Store, clock: FakeClock
):
    write(store, clock, 2)
    raw(store, "DELETE FROM audit_log WHERE id = 2")
    entry = audit.record(store, "alice", "down", "shop", "test", "pr-1", "ok", {}, clock=clock)
    assert entry.id == 2
    assert audit.verify(store).ok  # a truncated tail is invisible without an outside anchor


@pytest.mark.parametrize(
    "detail",
    [
        {"password": Secret("hunter2")},
        {"env": {"DB": [1, {"url": Secret("postgres://u:p@h/db")}]}},
        {"values": (Secret("x"),)},
    ],
)
def test_a_secret_anywhere_in_detail_is_refused(store: Store, clock: FakeClock, detail):
    with pytest.raises(TypeError, match="Secret must never be stored"):
        audit.record(store, "alice", "up", "shop", "test", "pr-1", "ok", detail, clock=clock)
    assert audit.verify(store).rows == 0


def test_a_secret_as_actor_is_refused(store: Store, clock: FakeClock):
    with pytest.raises(TypeError, match="actor: a Secret"):
        audit.record(store, Secret("x"), "up", "shop", "test", "pr-1", "ok", {}, clock=clock)  # type: ignore[arg-type]


def test_a_naive_clock_is_refused(store: Store):
    with pytest.raises(ValueError, match="naive datetime"):
        audit.record(store, "a", "up", "shop", "test", "pr-1", "ok", {},
                     clock=lambda: datetime(2024, 1, 1))


def test_concurrent_appends_from_threads_never_fork_the_chain(store: Store):
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for n in range(10):
                audit.record(store, f"w{worker}", "tick", "shop", "ci", f"ci-{worker}", "ok",
                             {"n": n})
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = audit.verify(store)
    assert (result.ok, result.rows, result.problems) == (True, 60, [])


def test_the_actor_is_envplane_user_when_set_else_the_os_user():
    assert audit.actor_from({"ENVPLANE_USER": "deploy-bot"}) == "deploy-bot"
    assert audit.actor_from({"ENVPLANE_USER": "  "}) == getpass.getuser()
    assert audit.actor_from({}) == getpass.getuser()
