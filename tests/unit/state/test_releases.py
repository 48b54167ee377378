"""Releases, approvals and gate results as promote and rollback read them back."""

from __future__ import annotations

import pytest

from envplane.errors import StateError
from envplane.secret import Secret
from envplane.state import instances as st
from envplane.state import releases as rel
from envplane.state.db import Store
from tests.unit.state.stores import FakeClock

IMAGES = {"backend": {"ref": "shop-backend:v1.0.45", "id": "sha256:1", "digest": None, "built": True}}


def deployed(store: Store, env: str, instance: str, version: str, status: str = "ok",
             colour: str | None = None, hook: str | None = None) -> None:
    row = st.start_deployment(store, "shop", env, instance, "alice", version=version, colour=colour)
    if hook:
        step = st.start_step(store, row.id, 1, f"hook:{hook}", f"run the {hook} hook")
        st.finish_step(store, step.id, "ok" if status == "ok" else "failed")
    st.finish_deployment(store, row.id, status)


def test_a_release_is_recorded_once_with_its_images(store: Store, clock: FakeClock) -> None:
    made = rel.record_release(store, "shop", "v1.0.45", IMAGES, "alice", ref="main", commit="1a2b",
                              clock=clock)
    assert rel.get_release(store, "shop", "v1.0.45") == made
    assert made.images["backend"]["id"] == "sha256:1"
    with pytest.raises(StateError, match=r"release v1\.0\.45 of shop exists already"):
        rel.record_release(store, "shop", "v1.0.45", IMAGES, "bob")
    rel.record_release(store, "shop", "v1.0.46", IMAGES, "alice", clock=clock)
    rel.record_release(store, "blog", "v9.0.0", IMAGES, "alice", clock=clock)
    assert [r.version for r in rel.list_releases(store, "shop")] == ["v1.0.46", "v1.0.45"]
    assert rel.get_release(store, "shop", "v2.0.0") is None


def test_a_secret_never_goes_into_a_release(store: Store) -> None:
    with pytest.raises(TypeError, match="Secret"):
        rel.record_release(store, "shop", "v1.0.1", {"backend": {"ref": Secret("x")}}, "alice")


def test_approvals_are_per_version_and_env_and_keep_what_was_signed(store: Store, clock: FakeClock) -> None:
    def approve(version: str, env: str, who: str) -> None:
        rel.record_approval(store, "shop", version, env, who, clock(), who, f"SHA256:{who}",
                            f'{{"who":"{who}"}}', f"-----BEGIN SSH SIGNATURE-----\n{who}")

    approve("v1.0.45", "production", "bob")
    approve("v1.0.45", "production", "carol")
    approve("v1.0.45", "dr", "dave")
    found = rel.approvals(store, "shop", "v1.0.45", "production")
    assert [(a.env, a.actor, a.principal, a.key_fingerprint, a.payload) for a in found] == [
        ("production", "bob", "bob", "SHA256:bob", '{"who":"bob"}'),
        ("production", "carol", "carol", "SHA256:carol", '{"who":"carol"}')]
    assert found[0].signature == "-----BEGIN SSH SIGNATURE-----\nbob"
    assert [a.env for a in rel.approvals(store, "shop", "v1.0.45")] == ["production", "production", "dr"]
    assert rel.approvals(store, "shop", "v1.0.46", "production") == []


def test_latest_gates_are_the_last_evaluation_per_env(store: Store, clock: FakeClock) -> None:
    first = rel.record_gates(store, "shop", "v1.0.45", "production", "alice",
                             [("order", True, "deployed"), ("approval", False, "not approved")], clock=clock)
    second = rel.record_gates(store, "shop", "v1.0.45", "production", "alice",
                              [("order", True, "deployed"), ("approval", True, "approved by bob")], clock=clock)
    rel.record_gates(store, "shop", "v1.0.45", "staging", "ci", [("order", True, "on test")], clock=clock)
    assert second == first + 1
    found = {(g.env, g.gate): g.ok for g in rel.latest_gates(store, "shop", "v1.0.45")}
    assert found == {("production", "order"): True, ("production", "approval"): True,
                     ("staging", "order"): True}


def test_history_and_placements_count_only_successful_deploys(store: Store) -> None:
    deployed(store, "production", "production", "v1.0.44", colour="blue")
    deployed(store, "production", "production", "v1.0.45", colour="green")
    deployed(store, "production", "production", "v1.0.46", status="failed", colour="blue")
    deployed(store, "staging", "staging", "v1.0.46")
    assert [(p.version, p.colour) for p in rel.history(store, "shop", "production", "production")] == [
        ("v1.0.45", "green"), ("v1.0.44", "blue")]
    assert {(p.env, p.version) for p in rel.placements(store, "shop")} == {
        ("production", "v1.0.45"), ("staging", "v1.0.46")}
    st.upsert_instance(store, "shop", "staging", "staging", "down")
    assert {p.env for p in rel.placements(store, "shop")} == {"production"}


def test_hook_ran_needs_an_ok_step_of_that_version_on_that_env(store: Store) -> None:
    deployed(store, "staging", "staging", "v1.0.45", hook="migrate")
    deployed(store, "staging", "staging", "v1.0.46", status="failed", hook="migrate")
    assert rel.hook_ran(store, "shop", "v1.0.45", "staging", "migrate")
    assert not rel.hook_ran(store, "shop", "v1.0.46", "staging", "migrate")
    assert not rel.hook_ran(store, "shop", "v1.0.45", "production", "migrate")


def test_a_version_passed_an_envs_gates_only_when_one_evaluation_passed_every_gate(store: Store) -> None:
    """What a gated rollback asks (#10.4): a failed try, another env's pass or another app's
    do not count; any one evaluation of this env with every gate passed does."""
    assert not rel.passed_gates(store, "shop", "v1.0.45", "production")
    rel.record_gates(store, "shop", "v1.0.45", "production", "alice",
                     [("order", True, "on staging"), ("approval", False, "not approved")])
    rel.record_gates(store, "shop", "v1.0.45", "staging", "ci", [("order", True, "on test")])
    rel.record_gates(store, "blog", "v1.0.45", "production", "ci", [("order", True, "on staging")])
    assert not rel.passed_gates(store, "shop", "v1.0.45", "production")
    rel.record_gates(store, "shop", "v1.0.45", "production", "alice",
                     [("order", True, "on staging"), ("approval", True, "bob")])
    assert rel.passed_gates(store, "shop", "v1.0.45", "production")
    assert not rel.passed_gates(store, "shop", "v1.0.44", "production")
