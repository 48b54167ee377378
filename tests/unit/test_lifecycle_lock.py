"""#9.12: the instance lock of a changing command holds for as long as the command runs.

A heartbeat renews a short lease while the operation runs, and each step first checks
the lock is still its own: a step never runs once another operation took the instance
over. Real SQLite store; the steps are plain functions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from envplane import lifecycle
from envplane.apply import StepHook
from envplane.errors import Interrupted, LockError
from envplane.plan import Step
from envplane.spec.load import load_project
from envplane.state import audit, instances, locks
from envplane.state.db import Store, open_store
from envplane.state.models import LockRow
from envplane.target import Target, resolve
from tests.unit.state.stores import TEST_KEY


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path, audit_key=TEST_KEY)
    yield store
    store.close()


@pytest.fixture
def session_and_target(tmp_path: Path, store: Store) -> tuple[lifecycle.Session, Target]:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n")
    (tmp_path / "envplane.yaml").write_text("app: shop\ndomain: example.com\ncompose: compose.yaml\n")
    project = load_project(tmp_path / "envplane.yaml", {})
    session = lifecycle.Session(project, store, "alice", wait=False, lock_ttl=1.0)
    return session, resolve(project, "staging")


STEPS = [Step("start", "run", f"step {n}", resource=str(n)) for n in (1, 2, 3)]


def test_a_long_operation_keeps_its_short_lease_through_the_heartbeat(session_and_target):
    session, target = session_and_target
    refused: list[str] = []
    done = threading.Event()

    def intruder() -> None:
        while not done.is_set():
            try:
                lock = locks.acquire(session.store, "shop", "staging", "staging", "bob")
                lock.release()
                refused.append("taken: " + lock.note)
            except LockError:
                refused.append("refused")
            time.sleep(0.1)

    def apply(recorder: StepHook) -> dict[str, str]:
        thread = threading.Thread(target=intruder)  # bob tries while alice holds the lock
        thread.start()
        try:
            for step in STEPS:  # 3 x 0.9 s: more than twice the 1 s lease
                recorder(step, "start", 0.0)
                time.sleep(0.9)
                recorder(step, "ok", 0.9)
        finally:
            done.set()
            thread.join()
        return {}

    lifecycle.deploy(session, target, "up", apply, lambda *_: None)
    assert set(refused) == {"refused"} and len(refused) > 10
    [deployment] = instances.deployments(session.store, "shop", "staging", "staging")
    assert deployment.status == "ok"


def test_a_step_after_the_lock_was_taken_over_does_not_run(session_and_target):
    session, target = session_and_target
    ran: list[str] = []

    def apply(recorder: StepHook) -> dict[str, str]:
        for step in STEPS:
            recorder(step, "start", 0.0)
            ran.append(step.description)
            if step is STEPS[0]:  # someone judged our lease expired and took the instance
                with session.store.session() as db:
                    db.execute(delete(LockRow))
                locks.acquire(session.store, "shop", "staging", "staging", "bob")
            recorder(step, "ok", 0.0)
        return {}

    with pytest.raises(LockError) as caught:
        lifecycle.deploy(session, target, "up", apply, lambda *_: None)
    assert ran == ["step 1"]
    assert caught.value.message.startswith(
        "the lock of shop/staging/staging was taken over by bob (pid ")
    assert caught.value.message.endswith("alice stopped before its next step")
    [deployment] = instances.deployments(session.store, "shop", "staging", "staging")
    assert deployment.status == "failed"
    last = audit.entries(session.store)[-1]
    assert (last.action, last.outcome) == ("up", "failed")
    assert "taken over by bob" in last.detail["error"]
    # bob's lock is bob's: alice's exit must not release it
    holder = locks.holder_of(session.store, "shop", "staging", "staging")
    assert holder is not None and holder.holder == "bob"


def test_ctrl_c_in_a_step_marks_step_and_deployment_interrupted_audits_it_and_frees_the_lock(
        session_and_target):
    """#10.11: an interrupted `up` says where it stopped, is in the audit log, and leaves no lock."""
    session, target = session_and_target

    def apply(recorder: StepHook) -> dict[str, str]:
        recorder(STEPS[0], "start", 0.0)
        recorder(STEPS[0], "ok", 0.1)
        recorder(STEPS[1], "start", 0.0)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            recorder(STEPS[1], "interrupted", 0.2)  # as Applier.up reports it
            raise

    with pytest.raises(Interrupted) as caught:
        lifecycle.deploy(session, target, "up", apply, lambda *_: None)
    assert isinstance(caught.value, KeyboardInterrupt)  # whatever stops on Ctrl-C still does
    [deployment] = instances.deployments(session.store, "shop", "staging", "staging")
    assert deployment.status == "interrupted"
    assert caught.value.message == (f'up of shop staging during "step 2"; deployment #{deployment.id} '
                                    "is marked interrupted")
    assert caught.value.hint == "`envplane up staging` finishes it"
    assert [s.status for s in instances.steps(session.store, deployment.id)] == ["ok", "interrupted"]
    last = audit.entries(session.store)[-1]
    assert (last.action, last.outcome, last.detail["step"]) == ("up", "interrupted", "step 2")
    assert locks.holder_of(session.store, "shop", "staging", "staging") is None
