"""Instances, deployments and steps, as `up` will record them."""

from __future__ import annotations

import pytest

from envplane.errors import StateError
from envplane.secret import Secret
from envplane.state import instances as st
from envplane.state.db import Store
from tests.unit.state.stores import FakeClock


def test_upsert_creates_then_updates_an_instance(store: Store, clock: FakeClock):
    created = st.upsert_instance(store, "shop", "test", "pr-123", "provisioning", "abc123",
                                 clock=clock)
    updated = st.upsert_instance(store, "shop", "test", "pr-123", "running", clock=clock)
    assert (updated.id, updated.status, updated.ref) == (created.id, "running", "abc123")
    assert updated.created_at == created.created_at < updated.updated_at
    assert st.get_instance(store, "shop", "test", "pr-123") == updated


def test_a_missing_instance_is_none(store: Store):
    assert st.get_instance(store, "shop", "staging", "staging") is None


def test_list_filters_by_app_and_env_in_a_stable_order(store: Store, clock: FakeClock):
    for app, env, instance in [("shop", "test", "pr-2"), ("blog", "staging", "staging"),
                               ("shop", "test", "pr-1"), ("shop", "staging", "staging")]:
        st.upsert_instance(store, app, env, instance, "running", clock=clock)

    def names(records: list[st.InstanceRecord]) -> list[str]:
        return [f"{r.app}/{r.env}/{r.instance}" for r in records]

    assert names(st.list_instances(store)) == [
        "blog/staging/staging", "shop/staging/staging", "shop/test/pr-1", "shop/test/pr-2"]
    assert names(st.list_instances(store, app="shop", env="test")) == [
        "shop/test/pr-1", "shop/test/pr-2"]


def test_mark_closed_stamps_the_pr_close(store: Store, clock: FakeClock):
    st.upsert_instance(store, "shop", "test", "pr-5", "running", clock=clock)
    closed = st.mark_closed(store, "shop", "test", "pr-5", clock=clock)
    assert closed.closed_at == clock.now
    assert st.get_instance(store, "shop", "test", "pr-5") == closed


def test_mark_closed_of_an_unknown_instance_says_so(store: Store):
    with pytest.raises(StateError, match="no instance shop/test/pr-404"):
        st.mark_closed(store, "shop", "test", "pr-404")


def test_a_deployment_creates_its_instance_and_a_success_stamps_it(
    store: Store, clock: FakeClock
):
    started = st.start_deployment(store, "shop", "staging", "staging", "alice",
                                  ref="sha-1a2b", version="v1.0.45", clock=clock)
    assert started.status == "running" and started.finished_at is None
    finished = st.finish_deployment(store, started.id, "ok", clock=clock)
    instance = st.get_instance(store, "shop", "staging", "staging")
    assert instance is not None
    assert (finished.status, finished.finished_at) == ("ok", clock.now)
    assert (instance.status, instance.ref, instance.last_deploy_at) == ("ok", "sha-1a2b", clock.now)
    assert st.deployments(store, "shop", "staging", "staging") == [finished]


def test_a_failed_deployment_does_not_count_as_the_last_deploy(store: Store, clock: FakeClock):
    first = st.start_deployment(store, "shop", "test", "pr-1", "ci", ref="a", clock=clock)
    st.finish_deployment(store, first.id, "ok", clock=clock)
    good_at = clock.now
    second = st.start_deployment(store, "shop", "test", "pr-1", "ci", ref="b", clock=clock)
    st.finish_deployment(store, second.id, "failed", clock=clock)
    instance = st.get_instance(store, "shop", "test", "pr-1")
    assert instance is not None
    assert (instance.status, instance.ref, instance.last_deploy_at) == ("failed", "a", good_at)
    assert [d.id for d in st.deployments(store, "shop", "test", "pr-1")] == [second.id, first.id]


def test_steps_are_recorded_in_order_with_their_detail(store: Store, clock: FakeClock):
    deployment = st.start_deployment(store, "shop", "ci", "ci-42", "ci", clock=clock)
    second = st.start_step(store, deployment.id, 2, "compose", "start services", clock=clock)
    first = st.start_step(store, deployment.id, 1, "database", "create shop_ci", clock=clock)
    st.finish_step(store, first.id, "ok", {"noop": "database shop_ci exists"}, clock=clock)
    recorded = st.steps(store, deployment.id)
    assert [(s.index, s.status) for s in recorded] == [(1, "ok"), (2, "running")]
    assert recorded[0].detail == {"noop": "database shop_ci exists"}
    assert recorded[1] == second


def test_a_secret_in_step_detail_is_refused_and_nothing_changes(store: Store, clock: FakeClock):
    deployment = st.start_deployment(store, "shop", "ci", "ci-42", "ci", clock=clock)
    step = st.start_step(store, deployment.id, 1, "secrets", "write DB_PASSWORD", clock=clock)
    with pytest.raises(TypeError, match="Secret must never be stored"):
        st.finish_step(store, step.id, "ok", {"DB_PASSWORD": Secret("hunter2")}, clock=clock)
    assert st.steps(store, deployment.id) == [step]


def test_a_secret_as_ref_is_refused(store: Store):
    with pytest.raises(TypeError, match="ref: a Secret"):
        st.upsert_instance(store, "shop", "test", "pr-1", "running", Secret("x"))  # type: ignore[arg-type]


def test_unknown_deployment_and_step_ids_say_so(store: Store):
    with pytest.raises(StateError, match="no deployments row with id 99"):
        st.finish_deployment(store, 99, "ok")
    with pytest.raises(StateError, match="no deployment_steps row with id 7"):
        st.finish_step(store, 7, "ok")


def test_the_first_deploy_records_the_data_path_and_a_later_one_never_moves_it(
    store: Store, clock: FakeClock
):
    first = st.start_deployment(store, "shop", "test", "pr-5", "alice", clock=clock,
                                data_path="/data/test/shop-pr-5")
    st.finish_deployment(store, first.id, "ok", clock=clock)
    st.start_deployment(store, "shop", "test", "pr-5", "alice", clock=clock, data_path="/elsewhere/shop-pr-5")
    assert st.get_instance(store, "shop", "test", "pr-5").data_path == "/data/test/shop-pr-5"  # type: ignore[union-attr]
    st.upsert_instance(store, "shop", "test", "pr-5", "down", clock=clock)
    assert st.get_instance(store, "shop", "test", "pr-5").data_path == "/data/test/shop-pr-5"  # type: ignore[union-attr]


def test_a_purged_instance_owns_no_data_path_until_its_next_first_up(store: Store, clock: FakeClock):
    st.start_deployment(store, "shop", "test", "pr-5", "alice", clock=clock, data_path="/data/test/shop-pr-5")
    st.upsert_instance(store, "shop", "test", "pr-5", st.PARTIAL, clock=clock)
    assert st.get_instance(store, "shop", "test", "pr-5").data_path == "/data/test/shop-pr-5"  # type: ignore[union-attr]
    st.upsert_instance(store, "shop", "test", "pr-5", st.PURGED, clock=clock)
    assert st.get_instance(store, "shop", "test", "pr-5").data_path is None  # type: ignore[union-attr]
    st.start_deployment(store, "shop", "test", "pr-5", "alice", clock=clock, data_path="/srv/test/shop-pr-5")
    assert st.get_instance(store, "shop", "test", "pr-5").data_path == "/srv/test/shop-pr-5"  # type: ignore[union-attr]


def test_a_deploy_after_the_pr_closed_reopens_the_preview(store: Store, clock: FakeClock):
    st.start_deployment(store, "shop", "test", "pr-5", "alice", clock=clock)
    assert st.mark_closed(store, "shop", "test", "pr-5", clock=clock).closed_at is not None
    st.start_deployment(store, "shop", "test", "pr-5", "github", ref="sha2", clock=clock)  # reopened
    assert st.get_instance(store, "shop", "test", "pr-5").closed_at is None  # type: ignore[union-attr]
