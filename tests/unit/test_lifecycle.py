"""Bookkeeping of changing commands, on a real SQLite store: the recorded data path, and
what a failure leaves in the deployment, step and audit rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from envplane import lifecycle
from envplane.apply import StepHook
from envplane.errors import UsageError
from envplane.spec.load import load_project
from envplane.state import audit, instances
from envplane.target import Target, resolve

SPEC = "app: shop\ndomain: example.com\ncompose: compose.yaml\n"


@pytest.fixture()
def session(tmp_path: Path) -> Iterator[lifecycle.Session]:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: busybox}\n")
    (tmp_path / "envplane.yaml").write_text(SPEC)
    opened = lifecycle.open_session(load_project(tmp_path / "envplane.yaml", {}), {"ENVPLANE_USER": "alice"})
    yield opened
    opened.store.close()


def nothing(recorder: StepHook) -> Mapping[str, Any]:
    return {}


def test_the_first_deploy_records_the_data_path_and_another_one_is_refused(
        session: lifecycle.Session) -> None:
    target = resolve(session.project, "test", 5)
    lifecycle.deploy(session, target, "up", nothing, lambda *a: None)
    assert instances.get_instance(session.store, "shop", "test", "pr-5").data_path == target.data_path  # type: ignore[union-attr]
    moved: Target = replace(target, data_path="/srv/test/shop-pr-5")
    with pytest.raises(UsageError, match=r"keeps its data at /data/test/shop-pr-5 .* not /srv/test/shop-pr-5"):
        lifecycle.deploy(session, moved, "up", nothing, lambda *a: None)
    with pytest.raises(UsageError, match="keeps its data at"):
        lifecycle.down(session, moved, purge=True)
    assert len(instances.deployments(session.store, "shop", "test", "pr-5")) == 1
    assert [e.action for e in audit.entries(session.store)] == ["up"]


def failing_half_way(exc: BaseException):  # type: ignore[no-untyped-def]
    """An apply that runs one step, then fails in the next, as `up` would."""
    from envplane.plan import Step

    def apply(recorder: StepHook) -> Mapping[str, Any]:
        done, broken = Step("isolation", "check", "check isolation"), Step("directory", "create", "data folder")
        recorder(done, "start", 0.0)
        recorder(done, "ok", 0.1)
        recorder(broken, "start", 0.0)
        raise exc

    return apply


@pytest.mark.parametrize(("exc", "status", "error"), [
    (PermissionError(13, "Permission denied", "/data/test/shop-pr-5"), "failed",
     "PermissionError: [Errno 13] Permission denied: '/data/test/shop-pr-5'"),
    (KeyboardInterrupt(), "interrupted", "KeyboardInterrupt"),
])
def test_an_unexpected_error_or_ctrl_c_leaves_nothing_running_and_an_audit_row(
        session: lifecycle.Session, exc: BaseException, status: str, error: str) -> None:
    target = resolve(session.project, "test", 5)
    with pytest.raises(type(exc)):
        lifecycle.deploy(session, target, "up", failing_half_way(exc), lambda *a: None)
    [deployment] = instances.deployments(session.store, "shop", "test", "pr-5")
    assert deployment.status == status and deployment.finished_at is not None
    steps = instances.steps(session.store, deployment.id)
    assert [(s.kind, s.status) for s in steps] == [("isolation", "ok"), ("directory", status)]
    assert steps[1].detail == {"error": error}
    assert instances.get_instance(session.store, "shop", "test", "pr-5").status == status  # type: ignore[union-attr]
    [row] = audit.entries(session.store)
    assert (row.action, row.outcome, row.detail["error"]) == ("up", status, error)


def steps_of(kinds: list[str], fail_last: bool = False):  # type: ignore[no-untyped-def]
    """An apply that runs a step of each kind (a lock step reported without a start, as
    apply.py does), the last one failing when `fail_last`."""
    from envplane.plan import Step

    def apply(recorder: StepHook) -> Mapping[str, Any]:
        recorder(Step("lock", "run", "take the lock"), "ok", 0.0)
        for number, kind in enumerate(kinds, 1):
            step = Step(kind, "run", f"step {kind}")
            recorder(step, "start", 0.0)
            if fail_last and number == len(kinds):
                recorder(step, "failed", 0.2)
                raise RuntimeError("broken")
            recorder(step, "skip" if kind == "trial" else "ok", 0.1)
        return {}

    return apply


def _write_commits(session: lifecycle.Session) -> list[str]:
    """Each write transaction the store commits (SQLite: BEGIN IMMEDIATE), by the statement that opened it."""
    from sqlalchemy import event

    opened: list[str] = []
    event.listen(session.store.engine, "begin",
                 lambda conn: opened.append("write") if conn.get_execution_options().get("envplane_serialise")
                 else None)
    return opened


def test_each_step_costs_one_write_and_the_rows_say_what_each_did(session: lifecycle.Session) -> None:
    """#11: a step's row is opened in the transaction that closes the one before it (one
    commit a step, not two); what the rows say is the same."""
    target = resolve(session.project, "test", 5)
    kinds = ["isolation", "ports", "images", "trial", "directory", "render", "start", "health", "route",
             "record"]
    writes = _write_commits(session)
    lifecycle.deploy(session, target, "up", steps_of(kinds), lambda *a: None)
    # the lock (take, release), the deployment (open, close), the audit row, and the steps
    assert len(writes) <= len(kinds) + 1 + 5, len(writes)
    [deployment] = instances.deployments(session.store, "shop", "test", "pr-5")
    steps = instances.steps(session.store, deployment.id)
    assert [(s.index, s.kind, s.status) for s in steps] == [
        (1, "lock", "ok"), *[(n, k, "skip" if k == "trial" else "ok") for n, k in enumerate(kinds, 2)]]
    assert all(s.finished_at is not None and s.detail.get("seconds") is not None for s in steps)
    assert steps[-1].detail == {"seconds": 0.1} and steps[0].finished_at <= steps[1].started_at  # type: ignore[operator]


def test_a_failed_step_and_the_one_before_it_are_recorded_as_they_ended(session: lifecycle.Session) -> None:
    target = resolve(session.project, "test", 5)
    with pytest.raises(RuntimeError):
        lifecycle.deploy(session, target, "up", steps_of(["isolation", "start"], fail_last=True), lambda *a: None)
    [deployment] = instances.deployments(session.store, "shop", "test", "pr-5")
    steps = instances.steps(session.store, deployment.id)
    assert [(s.kind, s.status) for s in steps] == [("lock", "ok"), ("isolation", "ok"), ("start", "failed")]
    assert steps[2].detail == {"seconds": 0.2} and deployment.status == "failed"


def test_a_skipped_step_that_says_why_is_one_row_with_the_reason(session: lifecycle.Session) -> None:
    """apply reports a skip with a new Step saying why (`… — skipped: nothing running to
    protect`): it ends the row its start opened, not a second one left `running`."""
    from dataclasses import replace

    from envplane.plan import Step

    def apply(recorder: StepHook) -> Mapping[str, Any]:
        step = Step("trial", "run", "create the new containers in a trial project", phase="preflight")
        recorder(step, "start", 0.0)
        recorder(replace(step, description=f"{step.description} — skipped: nothing running to protect",
                         reason="nothing running to protect"), "skip", 0.1)
        return {}

    lifecycle.deploy(session, resolve(session.project, "test", 5), "up", apply, lambda *a: None)
    [deployment] = instances.deployments(session.store, "shop", "test", "pr-5")
    [trial] = instances.steps(session.store, deployment.id)
    assert (trial.kind, trial.status) == ("trial", "skip")
    assert trial.description.endswith("skipped: nothing running to protect")
