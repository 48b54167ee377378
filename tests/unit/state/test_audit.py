"""The audit log: a keyed hash chain that names the row a person edited, deleted or moved,
even one who can write the database and recompute hashes, but does not hold the key."""

from __future__ import annotations

import getpass
import hashlib
import hmac
import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from envplane.errors import StateError
from envplane.secret import Secret
from envplane.state import audit
from envplane.state.audit_key import AuditKey
from envplane.state.db import Store
from tests.unit.state.stores import TEST_KEY, FakeClock


def write(store: Store, clock: FakeClock, count: int) -> list[audit.AuditEntry]:
    return [
        audit.record(store, "alice", f"deploy-{n}", "shop", "staging", "staging", "ok",
                     {"step": n, "ref": "v1.0.4"}, clock=clock)
        for n in range(1, count + 1)
    ]


def raw(store: Store, statement: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement))


def test_first_row_hash_is_an_hmac_of_zeros_and_canonical_json_with_the_key_id(
    store: Store, clock: FakeClock
):
    entry = audit.record(store, "alice", "up", "shop", "test", "pr-7", "ok", {"b": 1, "a": [1]},
                         clock=clock)
    key_id = hmac.new(b"k" * 32, b"envplane audit key id", hashlib.sha256).hexdigest()[:16]
    row_json = (
        '{"action":"up","actor":"alice","app":"shop","at":"2024-05-01T12:00:01.000000Z",'
        f'"detail":{{"a":[1],"b":1}},"env":"test","id":1,"instance":"pr-7","key_id":"{key_id}",'
        '"outcome":"ok"}'
    )
    assert (entry.prev_hash, entry.key_id) == ("0" * 64, key_id)
    assert entry.hash == hmac.new(b"k" * 32, ("0" * 64 + row_json).encode(), hashlib.sha256).hexdigest()


def test_each_row_chains_to_the_previous(store: Store, clock: FakeClock):
    first, second, third = write(store, clock, 3)
    assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)
    assert [e.id for e in audit.entries(store)] == [1, 2, 3]
    assert [e.id for e in audit.entries(store, limit=2)] == [2, 3]


def test_an_untouched_log_verifies(store: Store, clock: FakeClock):
    entries = write(store, clock, 5)
    assert audit.verify(store) == audit.VerifyResult(True, 5, [], entries[-1].hash, 0, TEST_KEY.id)


def test_an_empty_log_verifies(store: Store):
    assert audit.verify(store) == audit.VerifyResult(True, 0, [], audit.GENESIS, 0, TEST_KEY.id)


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


# --- someone who can write the database but does not hold the audit key ---------------------

FIELDS = ("id", "at", "actor", "action", "app", "env", "instance", "outcome", "detail")


def plain_rechain(store: Store, start: int, key_ids: bool = True, until: int | None = None) -> None:
    """What anyone can do without the key: recompute every hash from row `start` on (to
    `until`) as the plain SHA-256 chain of envplane before audit keys; with key_ids=False the
    rows lose their key id too, as an old envplane would have written them."""
    rows = audit.entries(store)
    prev = rows[start - 2].hash if start > 1 else audit.GENESIS
    for entry in rows[start - 1:until]:
        fields = {k: getattr(entry, k) for k in FIELDS}
        if key_ids and entry.key_id is not None:
            fields["key_id"] = entry.key_id
        new = audit.chain_hash(prev, fields)
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE audit_log SET prev_hash = :p, hash = :h, key_id = :k WHERE id = :i"),
                         {"p": prev, "h": new, "i": entry.id, "k": fields.get("key_id")})
        prev = new


def test_an_edit_with_the_plain_chain_recomputed_is_named(store: Store, clock: FakeClock):
    write(store, clock, 4)
    raw(store, "UPDATE audit_log SET actor = 'bob' WHERE id = 2")
    plain_rechain(store, 2)
    result = audit.verify(store)
    assert not result.ok
    assert result.problems[0] == "audit row 2 (deploy-2 by bob): hash mismatch (the row was edited)"
    assert len(result.problems) == 3  # rows 3 and 4 no longer verify either


def test_a_log_rewritten_as_a_plain_chain_is_named_and_never_continued(store: Store, clock: FakeClock):
    write(store, clock, 3)
    raw(store, "UPDATE audit_log SET actor = 'bob' WHERE id = 2")
    plain_rechain(store, 1, key_ids=False)
    result = audit.verify(store)
    assert not result.ok
    assert result.problems == [
        "no row of the log is keyed: all 3 are plain SHA-256, as an envplane before audit keys "
        "wrote them, or as someone without the key rewrote them (`envplane audit key` keys the "
        "log from here on)"]
    with pytest.raises(StateError, match=r"last row \(3\) is not keyed") as caught:
        audit.record(store, "alice", "up", "shop", "test", "pr-1", "ok", {}, clock=clock)
    assert "envplane audit key" in caught.value.hint


def test_plain_rows_after_keyed_ones_are_named(store: Store, clock: FakeClock):
    write(store, clock, 4)
    plain_rechain(store, 3, key_ids=False)
    assert audit.verify(store).problems == [
        "audit row 3 (deploy-3 by alice): not keyed, after keyed rows (its hash was computed without the key)",
        "audit row 4 (deploy-4 by alice): not keyed, after keyed rows (its hash was computed without the key)"]


def test_rows_chained_with_another_key_are_named_and_not_continued(store: Store, clock: FakeClock):
    write(store, clock, 2)
    other = AuditKey(b"o" * 32, "ENVPLANE_AUDIT_KEY")
    elsewhere = replace(store, audit_key=other)
    problems = audit.verify(elsewhere).problems
    assert problems[0] == (f"audit row 1 (deploy-1 by alice): chained with audit key {TEST_KEY.id}, "
                           f"not with the key here ({other.id} from ENVPLANE_AUDIT_KEY)")
    with pytest.raises(StateError, match=f"chained with audit key {TEST_KEY.id}"):
        audit.record(elsewhere, "bob", "up", "shop", "test", "pr-1", "ok", {}, clock=clock)


def test_a_store_opened_without_its_key_cannot_be_written(store: Store):
    with pytest.raises(StateError, match="opened without its audit key"):
        audit.record(replace(store, audit_key=None), "a", "up", "shop", "test", "pr-1", "ok", {})


# --- a log of an envplane before audit keys ----------------------------------------------------

def legacy_rows(store: Store, count: int) -> None:
    """Rows as the envplane before audit keys wrote them: plain SHA-256, no key id."""
    prev = audit.GENESIS
    for n in range(1, count + 1):
        fields = {"id": n, "at": datetime(2024, 4, 1, 12, 0, n, tzinfo=UTC), "actor": "alice",
                  "action": f"old-{n}", "app": "shop", "env": "test", "instance": "pr-1", "outcome": "ok"}
        new = audit.chain_hash(prev, {**fields, "detail": {}})
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO audit_log (id, at, actor, action, app, env, instance, outcome, "
                              "detail, prev_hash, hash) VALUES (:id, :at, :actor, :action, :app, :env, "
                              ":instance, :outcome, '{}', :prev, :hash)"), {**fields, "prev": prev, "hash": new})
        prev = new


def test_an_old_log_is_keyed_once_by_a_person_then_kept_verifiable(store: Store, clock: FakeClock):
    legacy_rows(store, 3)
    assert not audit.verify(store).ok  # no keyed row yet: indistinguishable from a stripped log
    with pytest.raises(StateError, match="not keyed"):
        audit.record(store, "alice", "up", "shop", "test", "pr-1", "ok", {}, clock=clock)
    sealed = audit.start_keyed(store, clock=clock)
    assert sealed is not None and (sealed.id, sealed.action, sealed.outcome) == (4, "audit-keyed", "ok")
    assert sealed.detail == {"unkeyed_rows": 3, "unkeyed_last_hash": audit.entries(store)[2].hash,
                             "problems": []}
    assert audit.start_keyed(store, clock=clock) is None  # once
    audit.record(store, "alice", "up", "shop", "test", "pr-1", "ok", {}, clock=clock)
    result = audit.verify(store)
    assert (result.ok, result.rows, result.unkeyed) == (True, 5, 3)


def test_an_old_row_edited_after_keying_is_named(store: Store, clock: FakeClock):
    legacy_rows(store, 3)
    audit.start_keyed(store, clock=clock)
    raw(store, "UPDATE audit_log SET actor = 'bob' WHERE id = 2")
    plain_rechain(store, 2, until=3)  # the old rows' plain chain, recomputed as anyone could
    assert audit.verify(store).problems == [
        "audit row 4 (audit-keyed by envplane): prev_hash does not match row 3 "
        "(a row was deleted or reordered)"]
    plain_rechain(store, 2)  # and the keyed row after them too
    assert audit.verify(store).problems == [
        "audit row 4 (audit-keyed by envplane): hash mismatch (the row was edited)"]


def test_keying_an_old_log_records_the_problems_it_had(store: Store, clock: FakeClock):
    legacy_rows(store, 3)
    raw(store, "UPDATE audit_log SET actor = 'bob' WHERE id = 2")
    sealed = audit.start_keyed(store, clock=clock)
    assert sealed is not None and sealed.outcome == "broken"
    assert sealed.detail["problems"] == ["audit row 2 (old-2 by bob): hash mismatch (the row was edited)"]
